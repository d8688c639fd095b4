"""The training objective: the ELBO of Eq. 2, its KL weights, and the terms later work adds.

A model's forward pass gives the ELBO's parts for one posterior sample
(:func:`elbo_terms`); :class:`Objective` says how training combines them, from the
``train`` section of a config:

* ``beta_f`` and ``beta_z`` weight KL_f and KL_z (both 1: Eq. 2), each scaled by a
  linear warm-up from 0 to 1 over ``kl_warmup_steps`` (:func:`kl_warmup`);
* ``mi_weight`` > 0 adds that multiple of a minibatch estimate of I(f; z_1:T)
  (:func:`~dsvae.model.information.mi_penalty`, S3VAE's and C-DSVAE's penalty);
* ``contrast_weight`` > 0 adds that multiple of an InfoNCE loss between E_q[z_1:T] of
  each sequence and of an augmented copy that changes only what f should hold (a pitch
  shift or a channel permutation, :mod:`dsvae.augment`; C-DSVAE's idea);
* ``static_contrast_weight`` > 0 adds the same loss between E_q[f] of each sequence and
  of a copy with its frames shuffled in time, and perhaps mirrored;
* ``contrast_loss`` says how those two terms compare a sequence with its copy: InfoNCE
  (the copy is picked out among the batch) or ``match`` (the two posteriors must agree:
  their symmetric KL, :func:`~dsvae.model.information.posterior_match`).

All weights 0 and both betas 1 give the paper's objective, the negative ELBO. The
checks that the model and the data suit the terms run once, when the objective is
built (:meth:`Objective.build`). The objective knows nothing of training loops: the
caller passes the step number that the warm-up reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from dsvae.augment import Augmentation, FrameShuffle, build_augmentation, build_static_augmentation
from dsvae.config import ExperimentConfig, TrainConfig
from dsvae.errors import ConfigError
from dsvae.model.information import info_nce, mi_penalty, posterior_match

if TYPE_CHECKING:
    from dsvae.model.sequence import DSVAEOutput, SequenceModel

ELBO_TERMS = ("elbo", "recon", "kl_f", "kl_z")
"""The ELBO's parts that a forward pass returns (the keys of ``DSVAEOutput.terms``)."""


def elbo_terms(
    recon: torch.Tensor, kl_f: torch.Tensor, kl_z: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Batch means of the per-sequence (B,) terms, and the ELBO = recon - KL_f - KL_z (Eq. 2)."""
    return {
        "recon": recon.mean(),
        "kl_f": kl_f.mean(),
        "kl_z": kl_z.mean(),
        "elbo": (recon - kl_f - kl_z).mean(),
    }


def weighted_loss(terms: dict[str, torch.Tensor], beta_f: float, beta_z: float) -> torch.Tensor:
    """-(recon - beta_f KL_f - beta_z KL_z); the negative ELBO when both betas are 1."""
    return -(terms["recon"] - beta_f * terms["kl_f"] - beta_z * terms["kl_z"])


def kl_warmup(step: int, steps: int) -> float:
    """Linear KL warm-up from 0 to 1 over ``steps`` (1 when 0: the plain ELBO); ``step`` from 0."""
    return 1.0 if steps == 0 else min(1.0, (step + 1) / steps)


def extra_term_names(cfg: TrainConfig) -> tuple[str, ...]:
    """The terms beyond the ELBO that ``cfg`` asks for, in the order they are computed."""
    weights = (
        ("mi", cfg.mi_weight),
        ("contrast", cfg.contrast_weight),
        ("static_contrast", cfg.static_contrast_weight),
    )
    return tuple(name for name, weight in weights if weight > 0)


@dataclass(frozen=True)
class Objective:
    """The loss that training minimises, built from a config by :meth:`build`.

    ``augment`` is the augmentation of ``train.contrast_weight`` (None when that weight
    is 0, or until the data is known: see :attr:`needs_data`); ``static_augment`` the
    frame shuffle of ``train.static_contrast_weight``.
    """

    cfg: TrainConfig
    augment: Augmentation | None = None
    static_augment: Augmentation | None = None

    @classmethod
    def build(
        cls,
        config: ExperimentConfig,
        frame_shape: Sequence[int] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Objective:
        """Check that the model and the data suit the terms ``config`` asks for.

        Raises :class:`ConfigError` with what to change. With the data set's
        ``frame_shape`` and ``meta`` the augmentations are built for it (and checked
        against its frames); without them only the model is checked.
        """
        cfg = config.train
        static = None
        if cfg.static_contrast_weight > 0:
            mirror = cfg.static_contrast_augment == "mirror-shuffle"
            static = (
                FrameShuffle(mirror)
                if frame_shape is None
                else build_static_augmentation(cfg.static_contrast_augment, frame_shape)
            )
        augment = None
        if cfg.contrast_weight > 0:
            if config.model.dynamics != "stochastic":
                raise ConfigError(
                    "train.contrast_weight needs the stochastic dynamics "
                    "(model.dynamics=stochastic): the contrast is between per-frame "
                    "posteriors q(z_t | ...)"
                )
            if frame_shape is not None:
                augment = build_augmentation(
                    cfg.contrast_augment, frame_shape, meta or {}, cfg.pitch_max_factor
                )
        return cls(cfg, augment, static)

    @property
    def needs_data(self) -> bool:
        """Whether the contrastive term still waits for the data to build its augmentation."""
        return self.cfg.contrast_weight > 0 and self.augment is None

    def __call__(
        self,
        model: SequenceModel,
        x: torch.Tensor,
        out: DSVAEOutput,
        step: int = 0,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss of frames ``x`` (B, T, *frame) given the model's pass ``out`` over them.

        Returns (loss, extra): loss = -(recon - w beta_f KL_f - w beta_z KL_z) plus the
        weighted extra terms, where w is the warm-up weight at training step ``step``;
        ``extra`` holds the unweighted values of those terms (see
        :func:`extra_term_names`). The augmentations draw from ``generator``.
        """
        cfg = self.cfg
        w = kl_warmup(step, cfg.kl_warmup_steps)
        loss = model.loss(out, w * cfg.beta_f, w * cfg.beta_z)  # weighted_loss of out.terms
        extra, penalty = self.extra_terms(model, x, out, generator)
        return loss + penalty, extra

    def compare(self, q: Any, q_aug: Any) -> torch.Tensor:
        """How far the posterior of an augmented copy is from the original's (``contrast_loss``)."""
        if self.cfg.contrast_loss == "match":
            return posterior_match(q, q_aug)
        return info_nce(q.mean.flatten(1), q_aug.mean.flatten(1), self.cfg.contrast_temperature)

    def extra_terms(
        self,
        model: SequenceModel,
        x: torch.Tensor,
        out: DSVAEOutput,
        generator: torch.Generator | None = None,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The terms beyond the ELBO that the config asks for, and their weighted sum."""
        cfg, terms = self.cfg, {}
        total = x.new_zeros(())
        if cfg.mi_weight > 0:
            penalty, terms["mi"] = mi_penalty(out.q_f, out.f, out.q_z, out.z)
            total = total + cfg.mi_weight * penalty
        if cfg.contrast_weight > 0:
            if self.augment is None:
                raise ConfigError(
                    "train.contrast_weight needs its augmentation, which is built from the "
                    "data set: build the objective with the data's frame_shape and meta"
                )
            # E_q[z_1:T] of an augmented copy, given the copy's own E_q[f]
            features = model.encode_features(self.augment(x, generator))
            q_z_aug = model.posterior_z(features, model.posterior_f(features).mean)
            terms["contrast"] = self.compare(out.q_z, q_z_aug)
            total = total + cfg.contrast_weight * terms["contrast"]
        if cfg.static_contrast_weight > 0:
            # E_q[f] of a time-shuffled (and maybe mirrored) copy: same content, no dynamics
            shuffled = self.static_augment(x, generator)
            q_f_aug = model.posterior_f(model.encode_features(shuffled))
            terms["static_contrast"] = self.compare(out.q_f, q_f_aug)
            total = total + cfg.static_contrast_weight * terms["static_contrast"]
        return terms, total
