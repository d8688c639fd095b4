"""``dsvae quickstart``: simulate bouncing shapes, train, measure and draw, on a CPU.

The data are the paper's bouncing ball (Sec. 4.3) with a static content per sequence:
a shape (ball, square or triangle), a size and a grey level. Training runs a fixed number
of steps, so every machine trains the same model from the same seed; the measurement
needs no learned judge (:mod:`dsvae.eval.shapes`): it reads shapes by template matching
and motion by centres of mass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from dsvae import ops
from dsvae.atomic import atomic_write_json
from dsvae.config import load_config
from dsvae.data import SequenceDataset, make_bouncing_ball_dataset
from dsvae.data.shapes import StaticFactors
from dsvae.eval.shapes import differing_pairs, markdown_table, measure_shapes
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
from dsvae.viz import save_figure

FACTORS = StaticFactors(("ball", "triangle", "bar"), (5.0,), (255,))
"""The quickstart's content: one of three shapes per sequence (binary frames)."""
STEPS = 750
"""Training steps (batch 32): about 3 minutes on a 2-core CPU."""


@dataclass
class QuickstartResult:
    out_dir: Path
    pictures: list[Path]
    elbo_before: float
    elbo_after: float
    scores: dict
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
    length: int = 10,
    steps: int = STEPS,
    seed: int = 0,
    factors: StaticFactors = FACTORS,
    overrides: list[str] | None = None,
    progress: bool = True,
) -> QuickstartResult:
    """Simulate bouncing shapes, train ``steps`` steps, measure, draw; all under ``out_dir``.

    Writes ``data/`` and ``data-test/`` (64 held-out sequences from seed + 1), the run in
    ``run/``, pictures in ``pictures/`` and every number in ``summary.json``.
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    config = load_config(
        "quickstart",
        [
            f"train.seed={seed}",
            f"train.max_steps={steps}",
            "train.max_epochs=100000",
            "train.max_time_minutes=null",  # a fixed number of steps on every machine
            f"train.progress_bar={str(progress).lower()}",
            *(overrides or []),
        ],
    )
    make = dict(length=length, factors=factors)
    data_dir = make_bouncing_ball_dataset(
        out_dir / "data", n=n, seed=seed, show_progress=progress, **make
    )
    test_dir = make_bouncing_ball_dataset(out_dir / "data-test", n=64, seed=seed + 1, **make)
    frame_shape = list(SequenceDataset(data_dir).frame_shape)
    config = replace(config, model=replace(config.model, frame_shape=frame_shape))
    test = SequenceDataset(test_dir)
    x_test = load_batch(test, len(test), indices=list(range(len(test))))
    torch.manual_seed(seed)  # the initial weights that training starts from
    before = held_out_elbo(build_model(config.model), x_test)
    result = train(config, data_dir, out_dir / "run")
    after = held_out_elbo(result.model, x_test)
    scores = measure_shapes(result.model, test, pairs=64, samples=4, seed=seed)
    pictures = draw_all(result.model, test, out_dir / "pictures", scores, seed=seed)
    wall = time.perf_counter() - start
    summary = {
        "seed": seed,
        "train_sequences": n,
        "held_out_sequences": len(test),
        "length": length,
        "factors": factors.to_json(),
        "overrides": overrides or [],
        "elbo_before": round(before, 2),
        "elbo_after": round(after, 2),
        "train_steps": result.global_step,
        "train_wall_time_s": round(result.wall_time_s, 1),
        "wall_time_s": round(wall, 1),
        "disentanglement": scores,
        "machine": machine_description(),
    }
    atomic_write_json(out_dir / "summary.json", summary)
    return QuickstartResult(out_dir, pictures, before, after, scores, wall)


def draw_all(
    model, test: SequenceDataset, out_dir: Path, scores: dict, *, seed: int = 0, rows: int = 6
) -> list[Path]:
    """The overview, then reconstruction, generation, conditional, swap and imputation."""
    shapes = np.asarray(test.labels["shape"])
    a_idx, b_idx = differing_pairs(shapes, rows)
    x_a = load_batch(test, rows, indices=a_idx.tolist())
    x_b = load_batch(test, rows, indices=b_idx.tolist())
    t = x_a.shape[1]
    paths = [write_overview(model, test, out_dir / "overview.png", scores, seed=seed)]
    paths += write_reconstructions(model, x_a, out_dir)
    paths += write_generations(model, rows, t, out_dir, seed=seed)
    paths += write_conditional(model, x_a, out_dir, seed=seed)
    paths += write_swap(model, x_a, x_b, out_dir)
    mask = torch.zeros(x_a.shape[:2], dtype=torch.bool)
    mask[:, : max(1, t // 2)] = True  # observe the first half, predict the rest
    paths += write_imputation(model, x_a, mask, out_dir, seed=seed)
    return paths


def write_overview(
    model, test: SequenceDataset, path: Path, scores: dict, *, seed: int = 0, frames: int = 8
) -> Path:
    """One labelled figure: two data sequences, their swap, and fixed-f / fixed-z samples.

    The true path of the z donor is marked on the swapped frames (red +): the swapped shape
    should sit on it while looking like the f donor.
    """
    import matplotlib.pyplot as plt

    a_idx, b_idx = differing_pairs(np.asarray(test.labels["shape"]), 1)
    x_a = load_batch(test, 1, indices=a_idx.tolist())
    x_b = load_batch(test, 1, indices=b_idx.tolist())
    gen = model_generator(model, seed)
    ab, _ = ops.swap(model, x_a, x_b)
    enc_a, enc_b = ops.encode(model, x_a), ops.encode(model, x_b)
    fixed_f = ops.generate_fixed_f(model, 1, x_a.shape[1], f=enc_a.f[0], generator=gen)
    fixed_z = ops.generate_fixed_z(model, 1, z=enc_b.z[0], generator=gen)
    path_b = np.asarray(test.labels["positions"])[b_idx[0]]  # (T, 2)
    s = scores["swap"]
    rows = [
        ("a: data\n(gives f)", x_a, None),
        ("b: data\n(gives z_1:T)", x_b, None),
        ("f of a + z of b\n(+ = b's path)", ab, path_b),
        ("f of a,\nz from prior", fixed_f, None),
        ("z of b,\nf from prior", fixed_z, None),
    ]
    steps = np.linspace(0, x_a.shape[1] - 1, min(frames, x_a.shape[1])).round().astype(int)
    fig, axes = plt.subplots(len(rows), len(steps), figsize=(1.2 * len(steps) + 1.2, 6.6))
    axes = np.atleast_2d(axes)
    for r, (label, x, marks) in enumerate(rows):
        for c, t in enumerate(steps):
            ax = axes[r, c]
            ax.imshow(x[0, t, 0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
            if marks is not None:
                ax.plot(marks[t, 0] - 0.5, marks[t, 1] - 0.5, "r+", ms=7, mew=1.5)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"t = {t + 1}", fontsize=8)
        axes[r, 0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle(
        f"Content (f) and motion (z_1:T) separated, on {scores['pairs']} held-out pairs: "
        f"swaps keep the f donor's shape in {100 * s['content_kept']['shape']:.0f}% and follow "
        f"the z donor's path within {s['centre_error_px']:.2f} px",
        fontsize=8.5,
    )
    fig.subplots_adjust(left=0.16, right=0.99, top=0.9, bottom=0.02, wspace=0.05, hspace=0.08)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, path)


__all__ = ["FACTORS", "STEPS", "QuickstartResult", "markdown_table", "run_quickstart"]
