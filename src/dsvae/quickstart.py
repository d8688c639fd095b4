"""``dsvae quickstart``: simulate, train and draw, on a CPU, in a few minutes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from dsvae.config import load_config
from dsvae.data import SequenceDataset, make_bouncing_ball_dataset
from dsvae.io import atomic_write_json
from dsvae.machine import machine_description
from dsvae.model import build_model
from dsvae.showcase import (
    load_batch,
    model_generator,
    write_conditional,
    write_generations,
    write_imputation,
    write_reconstructions,
    write_swap,
)
from dsvae.train import train


@dataclass
class QuickstartResult:
    out_dir: Path
    pictures: list[Path]
    elbo_before: float
    elbo_after: float
    wall_time_s: float


def held_out_elbo(model, x: torch.Tensor, seed: int = 0) -> float:
    """Mean ELBO per sequence of ``x`` with a fixed noise draw (nats)."""
    model.eval()
    with torch.no_grad():
        return float(model(x, generator=model_generator(model, seed)).terms["elbo"])


def run_quickstart(
    out_dir: str | Path,
    *,
    n: int = 1000,
    length: int = 16,
    minutes: float = 4.0,
    seed: int = 0,
    overrides: list[str] | None = None,
    progress: bool = True,
) -> QuickstartResult:
    """Simulate a bouncing-ball set, train the quickstart config, write pictures to ``out_dir``."""
    start = time.perf_counter()
    out_dir = Path(out_dir)
    data_dir = make_bouncing_ball_dataset(
        out_dir / "data", n=n, length=length, seed=seed, show_progress=progress
    )
    test_dir = make_bouncing_ball_dataset(
        out_dir / "data-test", n=64, length=length, seed=seed + 1, show_progress=False
    )
    config = load_config(
        "quickstart",
        [
            f"train.seed={seed}",
            f"train.max_time_minutes={minutes}",
            f"train.progress_bar={str(progress).lower()}",
            *(overrides or []),
        ],
    )
    config.model.frame_shape = list(SequenceDataset(data_dir).frame_shape)
    test = SequenceDataset(test_dir)
    x_test = load_batch(test, len(test), indices=list(range(len(test))))
    torch.manual_seed(seed)  # the initial weights that training starts from
    before = held_out_elbo(build_model(config.model), x_test)
    result = train(config, data_dir, out_dir / "run")
    after = held_out_elbo(result.model, x_test)
    pictures = draw_all(result.model, x_test, out_dir / "pictures", seed=seed)
    wall = time.perf_counter() - start
    report = {
        "seed": seed,
        "train_sequences": n,
        "held_out_sequences": len(test),
        "length": length,
        "minutes": minutes,
        "overrides": overrides or [],
        "elbo_before": round(before, 2),
        "elbo_after": round(after, 2),
        "train_steps": result.global_step,
        "train_wall_time_s": round(result.wall_time_s, 1),
        "wall_time_s": round(wall, 1),
        "machine": machine_description(),
    }
    atomic_write_json(out_dir / "quickstart.json", report)
    return QuickstartResult(out_dir, pictures, before, after, wall)


def draw_all(model, x: torch.Tensor, out_dir: Path, *, seed: int = 0, rows: int = 6) -> list[Path]:
    """Every picture: reconstruction, generation, conditional generation, swap, imputation."""
    x = x[: 2 * rows]
    a, b = x[:rows], x[rows : 2 * rows]
    t = x.shape[1]
    paths = write_reconstructions(model, a, out_dir)
    paths += write_generations(model, rows, t, out_dir, seed=seed)
    paths += write_conditional(model, a, out_dir, seed=seed)
    paths += write_swap(model, a, b, out_dir)
    mask = torch.zeros(a.shape[:2], dtype=torch.bool)
    mask[:, : max(1, t // 2)] = True  # observe the first half, predict the rest
    paths += write_imputation(model, a, mask, out_dir, seed=seed)
    return paths
