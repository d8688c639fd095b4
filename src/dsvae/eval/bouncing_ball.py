"""Bouncing-ball protocol of Section 4.3: error against the number of missing frames.

For k = 0 .. T-1 consecutive missing frames at the end, each model observes the
first T - k frames of every test sequence, predicts the rest (``ops.impute``)
and is scored by the fraction of wrongly predicted pixels after binarising at
0.5 (:func:`dsvae.eval.metrics.pixel_error`), over all T frames ("reconstructed/
predicted") and over the missing frames alone.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from dsvae import ops
from dsvae.atomic import atomic_path
from dsvae.data import SequenceDataset, model_batches, require_same_frames
from dsvae.errors import DataError
from dsvae.eval.metrics import pixel_error
from dsvae.eval.report import finish_report
from dsvae.viz import FIG7_GREEN, save_figure, save_png


@ops.inference
def _batch_errors(model, x: torch.Tensor, ks: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel errors (all frames, missing frames) of one batch for each k missing at the end."""
    b, t = x.shape[:2]
    features = model.encode_features(x)  # per frame: shared by every k
    wrong_all, wrong_missing = np.zeros(len(ks)), np.zeros(len(ks))
    for i, k in enumerate(ks):
        mask = ops.observed_mask(b, t, t - k, device=x.device)
        pred = model.impute(x, mask, False, None, features=features)
        wrong_all[i] = pixel_error(pred, x)
        if k:
            wrong_missing[i] = pixel_error(pred[:, t - k :], x[:, t - k :])
    return wrong_all, wrong_missing


def missing_frames_curve(
    model,
    dataset: SequenceDataset,
    *,
    batch_size: int = 100,
    limit: int | None = None,
    max_missing: int | None = None,
) -> dict[str, list[float]]:
    """Pixel error for k = 0 .. T-1 consecutive missing frames at the end (Fig. 8).

    Returns ``{"missing": [k...], "error_all": [...], "error_missing": [...]}``;
    ``error_missing`` is NaN at k = 0. Means of the posterior and prior are used,
    so the curve is deterministic. Equals ``ops.impute(model, x, observed=T - k)``
    per k; the per-frame features are computed once per batch and reused.
    """
    require_same_frames(
        dataset.frame_shape, model.frame_shape, "evaluate on a data set of the same frame size"
    )
    t = dataset.length
    ks = list(range(0, (t - 1 if max_missing is None else min(max_missing, t - 1)) + 1))
    wrong_all, wrong_missing, count = np.zeros(len(ks)), np.zeros(len(ks)), 0
    for x in model_batches(dataset, batch_size, limit=limit):
        batch_all, batch_missing = _batch_errors(model, x, ks)
        wrong_all += batch_all * x.shape[0]
        wrong_missing += batch_missing * x.shape[0]
        count += x.shape[0]
    missing = wrong_missing / count
    missing[0] = np.nan
    return {
        "missing": ks,
        "error_all": (wrong_all / count).tolist(),
        "error_missing": missing.tolist(),
    }


def time_image(frames: np.ndarray, observed: np.ndarray, scale: int = 4) -> np.ndarray:
    """One sequence as one RGB image (Fig. 7): brightness grows with time, missing frames green.

    ``frames`` (T, H, W) in [0, 1]; ``observed`` (T,) bool. Later frames are drawn
    over earlier ones where they overlap.
    """
    t = frames.shape[0]
    image = np.zeros((*frames.shape[1:], 3))
    for step in range(t):
        weight = 0.25 + 0.75 * (step + 1) / t  # starting from dark, never fully black
        colour = np.ones(3) * weight if observed[step] else np.array(FIG7_GREEN) * weight
        on = frames[step] >= 0.5
        image[on] = colour
    image = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    return image.repeat(scale, 0).repeat(scale, 1)


def plot_curves(
    curves: dict[str, list[dict[str, list[float]]]],
    path: str | Path,
    *,
    key: str = "error_all",
    title: str = "",
) -> Path:
    """Fig. 8: mean and min-max band over seeds of each model's error curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for i, (name, runs) in enumerate(curves.items()):
        ks = np.array(runs[0]["missing"])
        values = np.array([r[key] for r in runs], dtype=float)  # (seeds, K)
        mean = np.nanmean(values, axis=0)
        ax.plot(
            ks,
            mean,
            color=f"C{i}",
            label=f"{name} ({len(runs)} seed{'s' if len(runs) > 1 else ''})",
        )
        ax.fill_between(ks, np.nanmin(values, 0), np.nanmax(values, 0), color=f"C{i}", alpha=0.25)
    ax.set_xlabel("number of consecutive missing frames")
    ax.set_ylabel("fraction of wrong pixels")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


@torch.no_grad()
def figure7(
    models: dict, x: torch.Tensor, path: str | Path, *, observed: int = 20, scale: int = 4
) -> Path:
    """Fig. 7: per sequence (rows), ground truth, then each model's reconstruction and prediction.

    ``x`` (B, T, 1, H, W) binary frames; the prediction observes the first
    ``observed`` frames and its missing frames are drawn green.
    """

    b, t = x.shape[:2]
    everything = np.ones(t, dtype=bool)
    first = np.arange(t) < observed
    columns = [("truth", x, everything)]
    for name, model in models.items():
        columns.append((f"{name} recon", ops.reconstruct(model, x), everything))
        columns.append((f"{name} pred", ops.impute(model, x, observed=observed), first))
    cells = [
        [time_image(frames[i, :, 0].cpu().numpy(), mask, scale) for _, frames, mask in columns]
        for i in range(b)
    ]
    pad, header = 4, 18
    h, w = cells[0][0].shape[:2]
    grid = np.full((header + b * (h + pad) + pad, len(columns) * (w + pad) + pad, 3), 255, np.uint8)
    for r, row in enumerate(cells):
        for c, cell in enumerate(row):
            y, x0 = header + pad + r * (h + pad), pad + c * (w + pad)
            grid[y : y + h, x0 : x0 + w] = cell
    image = Image.fromarray(grid)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=11)
    for c, (name, _, _) in enumerate(columns):
        draw.text((pad + c * (w + pad), 3), name, fill=(0, 0, 0), font=font)
    return save_png(np.asarray(image), path)


def ks_of(curves: dict[str, list[dict]]) -> list[int]:
    return next(iter(curves.values()))[0]["missing"]


def separated_ks(curves: dict[str, list[dict]], key: str = "error_all") -> list[int] | None:
    """The k at which the stochastic model's worst seed is below every other model's best seed.

    ``None`` without a stochastic model and at least one other.
    """
    if "stochastic" not in curves or len(curves) < 2:
        return None
    worst = np.max([r[key] for r in curves["stochastic"]], axis=0)
    best_other = np.min(
        [r[key] for n, runs in curves.items() if n != "stochastic" for r in runs], axis=0
    )
    return [k for k, a, b in zip(ks_of(curves), worst, best_other, strict=True) if a < b]


def _ranges(ks: list[int]) -> str:
    """[1, 2, 3, 7] -> '1-3, 7'."""
    if not ks:
        return "none"
    parts, start = [], ks[0]
    for prev, k in zip(ks, [*ks[1:], None], strict=True):
        if k is None or k != prev + 1:
            parts.append(f"{start}-{prev}" if prev > start else f"{start}")
            start = k
    return ", ".join(parts)


def _markdown(
    curves: dict[str, list[dict]], ks: tuple[int, ...] = (0, 1, 5, 10, 15, 20, 25, 29)
) -> str:
    lines = ["| missing frames | " + " | ".join(curves) + " |", "|---" * (len(curves) + 1) + "|"]
    for k in ks:
        cells = []
        for runs in curves.values():
            values = [r["error_all"][k] for r in runs if k < len(r["error_all"])]
            if not values:
                cells.append("")
                continue
            spread = f" ± {np.std(values):.4f}" if len(values) > 1 else ""
            cells.append(f"{np.mean(values):.4f}{spread}")
        if any(cells):
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluate_bouncing_ball(
    runs: list[str | Path],
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    observed: int = 20,
    limit: int | None = None,
    figure_rows: int = 6,
) -> dict:
    """Curves for every run (grouped by ``model.dynamics``), Fig. 7, Fig. 8 and a table."""
    import csv
    import time

    from dsvae.model import load_model

    start = time.perf_counter()
    out_dir = Path(out_dir)
    dataset = SequenceDataset(data_dir)
    if not 1 <= observed <= dataset.length:
        raise DataError(f"--observed must be in 1..{dataset.length}, got {observed}")
    curves: dict[str, list[dict]] = {}
    first: dict = {}
    for run in runs:
        model = load_model(run)
        curve = _cached_curve(run, model, dataset, limit)
        curve["run"] = str(run)
        curves.setdefault(model.config.dynamics, []).append(curve)
        first.setdefault(model.config.dynamics, model)
    out_dir.mkdir(parents=True, exist_ok=True)
    x = next(model_batches(dataset, figure_rows, limit=figure_rows))
    figure7(first, x, out_dir / "figure7.png", observed=observed)
    plot_curves(curves, out_dir / "figure8.png", title=f"{dataset.path.name}: prediction error")
    with atomic_path(out_dir / "curves.csv") as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["model", "run", "missing", "error_all", "error_missing"])
        for name, items in curves.items():
            for c in items:
                for k, a, m in zip(c["missing"], c["error_all"], c["error_missing"], strict=True):
                    writer.writerow(
                        [name, c["run"], k, f"{a:.6f}", "" if np.isnan(m) else f"{m:.6f}"]
                    )
    separated = separated_ks(curves)
    markdown = _markdown(curves)
    if separated is not None:
        markdown += (
            f"\n\nThe stochastic model's worst seed beats every seed of every other model at "
            f"{len(separated)} of {len(ks_of(curves))} values of k: {_ranges(separated)}."
        )
    report = {
        "curves": curves,
        "data": str(dataset.path),
        "test_sequences": len(dataset) if limit is None else min(limit, len(dataset)),
        "observed_in_figure7": observed,
        "stochastic_separated_at": separated,
    }
    return finish_report(
        out_dir / "curves",
        report,
        markdown,
        start,
        markdown_in_json=True,
        to_json=_json_safe,
        md_suffix="\n",
    )


CURVE_CACHE = "bouncing_ball_curve.json"


def _cached_curve(run: str | Path, model, dataset: SequenceDataset, limit: int | None) -> dict:
    """The run's curve on ``dataset``, read from ``RUN/eval/`` when it was computed before.

    The cache is keyed by the data set's folder, meta.json and ``limit`` and by the
    model file's size and time, so a retrained model or another data set is recomputed.
    """
    import json

    from dsvae.atomic import atomic_write_json
    from dsvae.errors import DsvaeError
    from dsvae.model.saved import WEIGHTS_FILE, resolve_model_dir
    from dsvae.text_files import read_json

    weights = resolve_model_dir(run) / WEIGHTS_FILE
    stat = weights.stat()
    key = {
        "data": str(dataset.path.resolve()),
        "meta": dataset.meta,
        "limit": limit,
        "weights": [stat.st_size, stat.st_mtime_ns],
    }
    path = Path(run) / "eval" / CURVE_CACHE
    if path.is_file():
        with contextlib.suppress(DsvaeError, ValueError, KeyError, TypeError):  # recompute
            saved = read_json(path)
            if saved["key"] == _json_safe(json.loads(json.dumps(key))):
                curve = saved["curve"]
                curve["error_missing"] = [
                    np.nan if v is None else v for v in curve["error_missing"]
                ]
                return curve
    curve = missing_frames_curve(model, dataset, limit=limit)
    if (Path(run) / "config.yaml").is_file() or (Path(run) / "model").is_dir():
        path.parent.mkdir(exist_ok=True)
        atomic_write_json(path, _json_safe({"key": key, "curve": curve}))
    return curve


def _json_safe(obj):
    """NaN becomes null, so the JSON stays standard."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and np.isnan(obj):
        return None
    return obj
