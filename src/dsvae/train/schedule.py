"""The learning rate over a run: scaled with the batch, warmed up, then constant or cosine.

Three settings of :class:`~dsvae.config.TrainConfig` shape it:

- ``lr_reference_batch``: ``lr`` is meant for a global batch of that many sequences, and
  the run's global batch ``B`` (``batch_size`` × processes) gets ``lr × (B / ref)``
  (``lr_scaling: linear``) or ``lr × sqrt(B / ref)`` (``sqrt``, the default). The linear
  rule keeps SGD's expected step per epoch; for Adam, whose update is normalised by the
  gradient's second moment, a B-fold batch lowers the gradient noise by sqrt(B), and the
  square-root rule keeps the update's noise where it was (Malladi et al. 2022, "On the
  SDEs and scaling rules for adaptive gradient algorithms"). For Adam the linear rule
  gives a larger rate than that, which needs a longer warm-up to stay stable.
- ``lr_warmup_steps``: over the first N optimiser steps the rate rises linearly, from
  1/N of the peak at step 0 to the peak at step N - 1, which keeps Adam's first steps
  small while its moment estimates are still poor.
- ``lr_schedule``: after the warm-up the rate stays at the peak (``constant``) or follows
  half a cosine down to ``lr_min_factor`` × the peak, reached at the run's last step
  (``cosine``).

The factor of step ``s`` (the ``s``-th optimiser step, from 0) is a pure function,
:func:`lr_factor`, which a :class:`~torch.optim.lr_scheduler.LambdaLR` applies; Lightning
steps it after every optimiser step and keeps its step count in checkpoints, so a resumed
run continues the schedule where it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from dsvae.choices import LrSchedule, Registry
from dsvae.config import TrainConfig


def _constant(progress: float, min_factor: float) -> float:
    return 1.0


def _cosine(progress: float, min_factor: float) -> float:
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


DECAYS: Registry[Callable[[float, float], float]] = Registry(
    "train.lr_schedule", LrSchedule, {"constant": _constant, "cosine": _cosine}
)
"""The factor after the warm-up, by ``train.lr_schedule``, given the progress through the
rest of the run (0 at the warm-up's last step, 1 at the run's last step) and ``lr_min_factor``."""


def peak_lr(cfg: TrainConfig, world_size: int = 1) -> float:
    """``train.lr``, scaled to the global batch ``batch_size × world_size`` when
    ``train.lr_reference_batch`` is set."""
    if cfg.lr_reference_batch is None:
        return cfg.lr
    ratio = cfg.batch_size * world_size / cfg.lr_reference_batch
    return cfg.lr * (ratio if cfg.lr_scaling == "linear" else math.sqrt(ratio))


def is_scheduled(cfg: TrainConfig) -> bool:
    """Whether the rate changes during the run (a scheduler is needed)."""
    return cfg.lr_schedule != "constant" or cfg.lr_warmup_steps > 0


def lr_factor(step: int, cfg: TrainConfig, total_steps: int) -> float:
    """The multiple of the peak rate that optimiser step ``step`` (from 0) of a run of
    ``total_steps`` steps uses."""
    warmup = cfg.lr_warmup_steps
    if step < warmup:
        return (step + 1) / warmup
    start = max(warmup - 1, 0)  # the decay starts where the warm-up ends, at the peak
    span = total_steps - 1 - start
    progress = 1.0 if span <= 0 else min((step - start) / span, 1.0)
    return DECAYS[cfg.lr_schedule](progress, cfg.lr_min_factor)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler that gives each optimiser step ``lr_factor`` × the optimiser's rate.

    The factor is a closure, not a callable object, so that a checkpoint keeps only the
    step count: a run resumed with a larger ``max_epochs`` spreads the rest of its cosine
    over the new length.
    """
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, cfg, total_steps)
    )
