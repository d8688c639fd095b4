"""Each config choice is listed once: validation and registries read the same names."""

from __future__ import annotations

import typing

import pytest

from dsvae import choices
from dsvae.choices import Registry, names
from dsvae.config import (
    FrameNetConfig,
    LikelihoodConfig,
    ModelConfig,
    TrainConfig,
    load_config,
)
from dsvae.errors import ConfigError
from dsvae.model.frames import FRAME_NETWORKS, NORMS
from dsvae.model.posteriors import DYNAMICS_POSTERIORS
from dsvae.model.registry import MODELS, build_model
from dsvae.train.schedule import DECAYS

CONFIGS = {
    "model": ModelConfig,
    "model.frames": FrameNetConfig,
    "model.likelihood": LikelihoodConfig,
    "train": TrainConfig,
}


def _literal_fields() -> dict[str, object]:
    """Every config key whose type is a Literal, with that type."""
    found = {}
    for prefix, cls in CONFIGS.items():
        for name, tp in typing.get_type_hints(cls).items():
            if typing.get_origin(tp) is typing.Literal:
                found[f"{prefix}.{name}"] = tp
    return found


def test_every_literal_field_is_a_named_choice():
    fields = _literal_fields()
    assert set(fields) == {
        "model.posterior",
        "model.dynamics",
        "model.frames.kind",
        "model.frames.norm",
        "model.likelihood.kind",
        "model.likelihood.scale",
        "model.likelihood.mean_activation",
        "train.contrast_augment",
        "train.static_contrast_augment",
        "train.contrast_loss",
        "train.compile_mode",
        "train.lr_schedule",
        "train.lr_scaling",
    }
    shared = {getattr(choices, n) for n in dir(choices) if not n.startswith("_")}
    assert all(tp in shared for tp in fields.values())  # defined in dsvae.choices only


@pytest.mark.parametrize(
    ("registry", "key"),
    [
        (MODELS, "model.dynamics"),
        (DYNAMICS_POSTERIORS, "model.posterior"),
        (FRAME_NETWORKS, "model.frames.kind"),
        (NORMS, "model.frames.norm"),
        (DECAYS, "train.lr_schedule"),
    ],
)
def test_registries_hold_exactly_the_valid_names(registry, key):
    assert registry.key == key
    assert tuple(registry) == names(_literal_fields()[key])
    with pytest.raises(ConfigError, match=rf"{key} must be one of \[.*\], got 'nope'"):
        registry["nope"]


def test_construction_and_loading_use_the_same_names():
    with pytest.raises(
        ConfigError, match=r"model.posterior must be one of \['factorised', 'full'\]"
    ):
        ModelConfig(posterior="fu11")
    with pytest.raises(ConfigError, match=r"model.frames.norm must be one of \['batch', 'group'"):
        load_config(None, ["model.frames.norm=instance"])
    # a config that skipped validation still fails loudly when a model is built from it
    config = ModelConfig(frame_shape=[1, 16, 16])
    object.__setattr__(config, "dynamics", "gru")
    with pytest.raises(ConfigError, match=r"model.dynamics must be one of \['stochastic'"):
        build_model(config)


def test_a_registry_must_cover_its_choice():
    with pytest.raises(TypeError, match=r"must hold exactly \['fixed', 'learned'\]"):
        Registry("model.likelihood.scale", choices.LikelihoodScale, {"fixed": 1})
    full = Registry("model.likelihood.scale", choices.LikelihoodScale, {"learned": 2, "fixed": 1})
    assert list(full) == ["fixed", "learned"] and full["learned"] == 2  # the choice's order


def test_baseline_dynamics_are_the_non_stochastic_ones():
    assert names(choices.Dynamics) == ("stochastic", *names(choices.BaselineDynamics))
