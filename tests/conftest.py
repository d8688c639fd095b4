"""Shared fixtures: tiny model configs, tiny models and frames to feed them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from dsvae.config import FrameNetConfig, LikelihoodConfig, ModelConfig
from dsvae.model import DSVAE

# The tests use tiny tensors: one intra-op thread is fastest, and avoids the many-fold
# slow-down of OpenMP threads spinning against other processes on a busy machine.
torch.set_num_threads(1)

LIKELIHOODS = {
    "bernoulli": lambda: LikelihoodConfig(kind="bernoulli"),
    "gaussian": lambda: LikelihoodConfig(kind="gaussian", scale="fixed", scale_value=0.2),
    "gaussian-learned": lambda: LikelihoodConfig(kind="gaussian", scale="learned", scale_value=0.3),
}
"""Short names for the three observation models the tests cover."""


def make_model_config(
    posterior: str = "factorised",
    kind: str = "conv",
    likelihood: str = "bernoulli",
    frame_shape: list[int] | None = None,
    *,
    f_dim: int = 5,
    z_dim: int = 3,
    hidden_dim: int = 8,
    deep: bool = False,
) -> ModelConfig:
    """A tiny :class:`ModelConfig`: conv frames [1, 16, 16] or mlp frames [20] by default.

    ``deep=True`` uses four conv layers (strides 1, 2, 2, 2) instead of two (2, 2).
    """
    if kind == "conv":
        channels, strides = ([4, 4, 4, 4], [1, 2, 2, 2]) if deep else ([4, 4], [2, 2])
        frames = FrameNetConfig(kind="conv", channels=channels, strides=strides, feature_dim=16)
        shape = frame_shape or [1, 16, 16]
    else:
        frames = FrameNetConfig(kind="mlp", hidden=[12], feature_dim=16)
        shape = frame_shape or [20]
    return ModelConfig(
        f_dim=f_dim,
        z_dim=z_dim,
        hidden_dim=hidden_dim,
        posterior=posterior,
        frame_shape=shape,
        frames=frames,
        likelihood=LIKELIHOODS[likelihood](),
    )


def make_frames(
    config: ModelConfig, batch: int = 2, length: int = 4, seed: int = 0
) -> torch.Tensor:
    """Float frames (B, T, *frame_shape) that suit the likelihood: binary or in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, length, *config.frame_shape, generator=g)
    return (x > 0.5).float() if config.likelihood.kind == "bernoulli" else x


@pytest.fixture
def tiny_model_config() -> Callable[..., ModelConfig]:
    """Factory: ``tiny_model_config(posterior="factorised", kind="conv", likelihood=...)``."""
    return make_model_config


@pytest.fixture
def tiny_model() -> Callable[..., DSVAE]:
    """Factory: a seeded tiny :class:`DSVAE`; same keyword arguments as the config factory."""

    def build(*args, seed: int = 0, **kwargs) -> DSVAE:
        torch.manual_seed(seed)
        return DSVAE(make_model_config(*args, **kwargs))

    return build


@pytest.fixture
def tiny_frames() -> Callable[..., torch.Tensor]:
    """Factory: ``tiny_frames(config, batch=2, length=4, seed=0)`` -> (B, T, *frame)."""
    return make_frames


class Payload:
    """Unpickling this creates the file ``path``: proof that a loader ran pickle."""

    def __init__(self, path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def ball80_dir(tmp_path_factory):
    """80 bouncing-ball sequences of 6 16x16 frames: with 5% validation, 76 train in 5
    batches of 16 and 4 validate."""
    from dsvae.data import make_bouncing_ball_dataset

    return make_bouncing_ball_dataset(
        tmp_path_factory.mktemp("ball") / "d", n=80, length=6, size=16, seed=3
    )
