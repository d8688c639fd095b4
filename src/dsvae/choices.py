"""Every named choice of a config, listed once, and the registries keyed by those names.

Each choice is a ``Literal`` type. The config dataclasses annotate their fields with it,
validation reads the valid names from it (:func:`names`, i.e. ``typing.get_args``), and
each registry of implementations (:class:`Registry`) must hold exactly those names, so a
name cannot be added in one place and forgotten in another.
"""

from __future__ import annotations

import typing
from typing import Any, Generic, Literal, TypeVar

from dsvae.errors import ConfigError

Posterior = Literal["factorised", "full"]
"""``model.posterior``: q(z_t | x_t) (Eq. 3, factorised q) or q(z_1:T | f, x_1:T) (Eq. 4, full q)."""
BaselineDynamics = Literal["lstm-f", "lstm-c"]
"""The deterministic-dynamics baselines of Section 4.3 (:mod:`dsvae.model.deterministic`)."""
Dynamics = Literal["stochastic", BaselineDynamics]
"""``model.dynamics``: the DSVAE's LSTM prior p(z_t | z_<t) of Eq. 1, or a baseline."""
FrameKind = Literal["conv", "mlp"]
"""``model.frames.kind``: conv networks for images (C, H, W), MLPs for vectors (D,)."""
FrameNorm = Literal["batch", "group", "layer", "none"]
"""``model.frames.norm``: the normalisation after each conv layer."""
LikelihoodKind = Literal["bernoulli", "gaussian"]
"""``model.likelihood.kind``: the family of p(x_t | z_t, f)."""
LikelihoodScale = Literal["fixed", "learned"]
"""``model.likelihood.scale``: how a Gaussian p(x_t | z_t, f) gets its scale."""
MeanActivation = Literal["sigmoid", "none"]
"""``model.likelihood.mean_activation``: the map from decoder output to a Gaussian mean."""
ContrastAugment = Literal["auto", "pitch", "channels", "colour"]
"""``train.contrast_augment`` (the augmentations are in :mod:`dsvae.augment`)."""
StaticAugment = Literal["shuffle", "mirror-shuffle"]
"""``train.static_contrast_augment`` (see :class:`dsvae.augment.FrameShuffle`)."""
ContrastLoss = Literal["infonce", "match"]
"""``train.contrast_loss``: how the contrastive terms compare a sequence with its augmented
copy (:func:`dsvae.model.information.info_nce` or :func:`~dsvae.model.information.posterior_match`)."""
CompileMode = Literal["default", "reduce-overhead", "max-autotune"]
"""``train.compile_mode``: the ``torch.compile`` mode when ``train.torch_compile`` is on
(``reduce-overhead`` captures the step in CUDA graphs on a GPU)."""
LrSchedule = Literal["constant", "cosine"]
"""``train.lr_schedule``: the learning rate after the warm-up (:mod:`dsvae.train.schedule`)."""
LrScaling = Literal["sqrt", "linear"]
"""``train.lr_scaling``: how the learning rate grows with the global batch when
``train.lr_reference_batch`` is set."""


def names(choice: Any) -> tuple[str, ...]:
    """The valid names of a ``Literal`` choice, in the order it lists them."""
    return typing.get_args(choice)


def check_choice(key: str, value: Any, choices: tuple) -> None:
    """Raise :class:`ConfigError` naming ``key`` and the valid ``choices`` unless ``value`` is one."""
    if value not in choices:
        raise ConfigError(f"{key} must be one of {list(choices)}, got {value!r}")


T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    """A plain dict from the names of one choice to what each name builds.

    It must hold exactly the names of ``choice`` (checked when its module is imported),
    and looking up any other name raises :class:`ConfigError` with ``key`` and the valid
    names, e.g. ``model.posterior must be one of ['factorised', 'full'], got 'fu11'``.
    """

    def __init__(self, key: str, choice: Any, entries: dict[str, T]) -> None:
        valid = names(choice)
        if sorted(entries) != sorted(valid):
            raise TypeError(
                f"the registry of {key} must hold exactly {list(valid)}, got {list(entries)}"
            )
        super().__init__((name, entries[name]) for name in valid)
        self.key = key

    def __missing__(self, name: str) -> T:
        raise ConfigError(f"{self.key} must be one of {list(self)}, got {name!r}")
