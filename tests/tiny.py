"""The tests' tiny config: the real ``configs/quickstart.yaml`` with small widths.

:func:`tiny_overrides` shrinks the model of any shipped config to a conv DSVAE on 16x16
frames (f 4, z 3, two stride-2 convolutions of ``width`` channels, LSTMs of 2 * width,
frame features of 4 * width); :func:`tiny_config` applies it to the quickstart config,
:func:`tiny_model` builds the model, and :func:`as_set` spells overrides for the CLI.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dsvae.config import ExperimentConfig, load_config
from dsvae.model import build_model

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"


def tiny_overrides(*extra: str, width: int = 4) -> list[str]:
    """``--set`` overrides that shrink a config's model, then ``extra`` (e.g. train keys)."""
    return [
        "model.f_dim=4",
        "model.z_dim=3",
        f"model.hidden_dim={2 * width}",
        f"model.frames.channels=[{width},{width}]",
        "model.frames.strides=[2,2]",
        f"model.frames.feature_dim={4 * width}",
        *extra,
    ]


def tiny_config(*extra: str, width: int = 4) -> ExperimentConfig:
    """``configs/quickstart.yaml`` shrunk by :func:`tiny_overrides`, then ``extra``."""
    return load_config(QUICKSTART, tiny_overrides(*extra, width=width))


def tiny_model(*extra: str, width: int = 4, seed: int = 0) -> torch.nn.Module:
    """The model of :func:`tiny_config`, initialised from ``seed``."""
    config = tiny_config(*extra, width=width)
    torch.manual_seed(seed)
    return build_model(config.model)


def as_set(overrides: list[str]) -> list[str]:
    """``["a=1", "b=2"]`` -> ``["--set", "a=1", "--set", "b=2"]``."""
    return [word for override in overrides for word in ("--set", override)]


# the training settings the training tests share (with width 8)
TINY_MODEL = tiny_overrides(width=8)
TINY_TRAIN = [
    "train.batch_size=16",
    "train.lr=0.003",
    "train.progress_bar=false",
    "train.log_every_n_steps=2",
]


def train_config(*extra: str) -> ExperimentConfig:
    """:func:`tiny_config` at width 8 with the training tests' settings (``TINY_TRAIN``),
    then ``extra``."""
    return tiny_config(*TINY_TRAIN, *extra, width=8)
