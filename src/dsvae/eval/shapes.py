"""Disentanglement on bouncing shapes, measured without a learned judge.

The content of a bouncing-shapes sequence (shape, size, grey level; see
:mod:`dsvae.data.shapes`) and its motion (the centre of each frame) are known exactly, so
a frame is read by template matching against the renderings the simulator can draw, and
its centre by its centre of mass. Three protocols (Section 2, Fig. 3 e-h of the paper):

* **swap**: for held-out pairs (a, b) of different shapes, decode f of a with z_1:T of b;
  the content should be a's (the f donor) and the centres should follow b (the z donor);
* **fixed f**: f of a with z_1:T ~ p(z_1:T): the content stays a's, at every frame;
* **fixed z**: z_1:T of b with f ~ p(f): the centres follow b while the content varies.

The readers and scores are pure functions of arrays; :func:`measure_shapes` runs the
model (through :mod:`dsvae.ops`) and calls them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dsvae import ops
from dsvae.data import SequenceDataset, prepare_frames
from dsvae.data.shapes import StaticFactors, render
from dsvae.errors import DataError

MIN_MASS = 0.25
"""A frame whose intensity sums to less than this fraction of the smallest shape is empty."""


@dataclass
class Reading:
    """What each frame shows: factor indices (-1 for an empty frame) and centres (x, y)."""

    shape: np.ndarray  # (N,) int, index into factors.shapes
    size: np.ndarray  # (N,) int, index into factors.sizes
    grey: np.ndarray  # (N,) int, index into factors.greys
    centre: np.ndarray  # (N, 2) float, pixels


def factors_of(dataset: SequenceDataset) -> tuple[StaticFactors, float]:
    """The data set's factors and its scale (frame side / 32); refuses a set without them."""
    factors = dataset.meta.get("factors")
    if not factors or "shape" not in dataset.labels:
        raise DataError(
            f"{dataset.path} has no shape labels; build bouncing shapes with "
            "`dsvae data bouncing-ball --shapes ball,square,triangle ...`"
        )
    found = StaticFactors(factors["shapes"], factors["sizes"], factors["greys"])
    return found, dataset.frame_shape[-1] / 32.0


def read_frames(frames: np.ndarray, factors: StaticFactors, scale: float) -> Reading:
    """Read frames (N, H, W) with values in [0, 1] by template matching.

    The centre is the intensity-weighted centre of mass. Each (shape, size) is rendered at
    that centre as a 0/1 template T; the least-squares amplitude a = <x, T> / <T, T> fits
    its grey level, and the template with the smallest residual |x - a T|^2 is the reading;
    the grey level is the nearest of ``factors.greys`` to 255 a.
    """
    if frames.ndim != 3 or frames.shape[1] != frames.shape[2]:
        raise DataError(f"read_frames needs square frames (N, H, W), got {frames.shape}")
    n, side = frames.shape[0], frames.shape[1]
    frames = np.clip(frames.astype(np.float32), 0.0, 1.0)
    grid = np.arange(side, dtype=np.float32) + 0.5
    mass = frames.sum(axis=(1, 2))  # (N,)
    safe = np.maximum(mass, 1e-6)
    centre = np.stack(
        [
            (frames.sum(axis=1) * grid).sum(axis=1) / safe,
            (frames.sum(axis=2) * grid).sum(axis=1) / safe,
        ],
        axis=1,
    )  # (N, 2) as (x, y)
    best = np.full(n, np.inf)
    shape = np.full(n, -1)
    size = np.full(n, -1)
    amplitude = np.zeros(n)
    for s, body in enumerate(factors.bodies):
        for r, radius in enumerate(factors.sizes):
            template = render(body, radius * scale, 1, centre, side)[..., 0].astype(np.float32)
            area = np.maximum(template.sum(axis=(1, 2)), 1.0)
            a = (template * frames).sum(axis=(1, 2)) / area
            residual = ((frames - a[:, None, None] * template) ** 2).sum(axis=(1, 2))
            better = residual < best
            best[better], shape[better], size[better] = residual[better], s, r
            amplitude[better] = a[better]
    levels = np.asarray(factors.greys, dtype=np.float64) / 255.0
    grey = np.abs(amplitude[:, None] - levels[None, :]).argmin(axis=1)
    smallest = np.pi * (min(factors.sizes) * scale) ** 2 * levels.min()
    empty = mass < MIN_MASS * smallest
    shape[empty], size[empty], grey[empty] = -1, -1, -1
    return Reading(shape, size, grey, centre)


def _majority(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of (B, T) labels: the most common value and the fraction of frames that have it."""
    out, share = np.empty(values.shape[0], dtype=np.int64), np.empty(values.shape[0])
    for i, row in enumerate(values):
        kinds, counts = np.unique(row, return_counts=True)
        out[i], share[i] = kinds[counts.argmax()], counts.max() / row.size
    return out, share


@dataclass
class SequenceReading:
    """Sequence-level content (the frames' majority) and per-frame centres."""

    shape: np.ndarray  # (B,)
    size: np.ndarray  # (B,)
    grey: np.ndarray  # (B,)
    constant: np.ndarray  # (B,) fraction of frames that show the majority shape
    centre: np.ndarray  # (B, T, 2)


def read_sequences(frames: np.ndarray, factors: StaticFactors, scale: float) -> SequenceReading:
    """Read sequences (B, T, H, W) in [0, 1]: each factor is the majority over frames."""
    b, t = frames.shape[:2]
    r = read_frames(frames.reshape(b * t, *frames.shape[2:]), factors, scale)
    shape, constant = _majority(r.shape.reshape(b, t))
    size, _ = _majority(r.size.reshape(b, t))
    grey, _ = _majority(r.grey.reshape(b, t))
    return SequenceReading(shape, size, grey, constant, r.centre.reshape(b, t, 2))


def centre_error(centre: np.ndarray, positions: np.ndarray) -> float:
    """Mean distance in pixels between read centres and true positions (B, T, 2)."""
    return float(np.linalg.norm(centre - positions, axis=-1).mean())


def content_kept(read: SequenceReading, content: np.ndarray) -> dict[str, float]:
    """Fractions of sequences whose shape, size, grey level (and all three) match ``content``.

    ``content`` is (B, 3) indices (shape, size, grey) of the sequences that should be copied.
    """
    same = np.stack([read.shape, read.size, read.grey], axis=1) == content
    return {
        "shape": float(same[:, 0].mean()),
        "size": float(same[:, 1].mean()),
        "grey": float(same[:, 2].mean()),
        "all": float(same.all(axis=1).mean()),
    }


def differing_pairs(shapes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n`` pairs (a, b) of different shapes: a = i, b = the next index of another shape."""
    a_idx, b_idx = [], []
    for i in range(len(shapes)):
        for step in range(1, len(shapes)):
            j = (i + step) % len(shapes)
            if shapes[j] != shapes[i]:
                a_idx.append(i)
                b_idx.append(j)
                break
        if len(a_idx) == n:
            break
    if not a_idx:
        raise DataError("the held-out set has one shape only; build it with several --shapes")
    return np.array(a_idx), np.array(b_idx)


def _frames(x: torch.Tensor) -> np.ndarray:
    """Model-space frames (B, T, 1, H, W) -> numpy (B, T, H, W) in [0, 1] (grey frames)."""
    return x[:, :, 0].float().cpu().numpy()


def measure_shapes(
    model, dataset: SequenceDataset, *, pairs: int = 64, samples: int = 4, seed: int = 0
) -> dict:
    """Swap, fixed-f and fixed-z scores of ``model`` on a held-out bouncing-shapes set."""
    if tuple(dataset.frame_shape)[0] != 1:
        raise DataError("measure_shapes reads grey frames (1 channel)")
    factors, scale = factors_of(dataset)
    labels = dataset.labels
    content = np.stack(
        [
            labels["shape"],
            _index(labels["size"] / scale, factors.sizes),
            _index(labels["grey"], factors.greys),
        ],
        axis=1,
    )  # (N, 3)
    positions = np.asarray(labels["positions"], dtype=np.float64)  # (N, T, 2)
    a_idx, b_idx = differing_pairs(content[:, 0], pairs)
    x = prepare_frames(torch.from_numpy(np.array(dataset.frames)))
    device = next(model.parameters()).device
    x_a, x_b = x[a_idx].to(device), x[b_idx].to(device)
    gen = torch.Generator(device=device).manual_seed(seed)

    ab, _ = ops.swap(model, x_a, x_b)
    swap = read_sequences(_frames(ab), factors, scale)
    recon = read_sequences(_frames(ops.reconstruct(model, x_b)), factors, scale)

    t, k = x.shape[1], samples
    enc_a, enc_b = ops.encode(model, x_a), ops.encode(model, x_b)
    with torch.no_grad():  # K draws from the priors per sequence (Fig. 3 g, h)
        z_prior = model.sample_z(len(a_idx) * k, t, gen)
        f_prior = model.sample_f(len(b_idx) * k, gen)
    fixed_f = ops.decode(model, z_prior, enc_a.f.repeat_interleave(k, 0))
    fixed_z = ops.decode(model, enc_b.z.repeat_interleave(k, 0), f_prior)
    read_f = read_sequences(_frames(fixed_f), factors, scale)
    read_z = read_sequences(_frames(fixed_z), factors, scale)

    shapes_z = read_z.shape.reshape(len(b_idx), k)
    differ = np.mean(
        [(row[:, None] != row[None, :])[np.triu_indices(k, 1)].mean() for row in shapes_z]
    )
    freq = np.bincount(content[:, 0], minlength=len(factors.shapes)) / len(content)
    return {
        "pairs": len(a_idx),
        "samples": k,
        "factors": factors.to_json(),
        "reconstruction": {
            "content_kept": content_kept(recon, content[b_idx]),
            "centre_error_px": centre_error(recon.centre, positions[b_idx]),
        },
        "swap": {
            "content_kept": content_kept(swap, content[a_idx]),
            "shape_of_z_donor": float((swap.shape == content[b_idx, 0]).mean()),
            "centre_error_px": centre_error(swap.centre, positions[b_idx]),
            "centre_error_to_f_donor_px": centre_error(swap.centre, positions[a_idx]),
            "shape_constant_over_time": float(swap.constant.mean()),
        },
        "fixed_f": {
            "content_kept": content_kept(read_f, np.repeat(content[a_idx], k, axis=0)),
            "shape_constant_over_time": float(read_f.constant.mean()),
        },
        "fixed_z": {
            "centre_error_px": centre_error(read_z.centre, np.repeat(positions[b_idx], k, axis=0)),
            "shapes_differ": float(differ),
            "shapes_differ_in_data": float(1.0 - (freq**2).sum()),
        },
    }


def _index(values: np.ndarray, choices: tuple) -> np.ndarray:
    """Indices of ``values`` in ``choices`` (nearest, for sizes stored as floats)."""
    values = np.asarray(values, dtype=np.float64)
    return np.abs(values[:, None] - np.asarray(choices, dtype=np.float64)[None, :]).argmin(axis=1)


def markdown_table(scores: dict) -> str:
    """The scores as a short Markdown table (rates in %, errors in pixels)."""
    s, f, z, r = scores["swap"], scores["fixed_f"], scores["fixed_z"], scores["reconstruction"]

    def pct(v: float) -> str:
        return f"{100 * v:.1f}%"

    rows = [
        ("swap: shape kept from the f donor", pct(s["content_kept"]["shape"])),
        (
            "swap: size and grey kept from the f donor",
            f"{pct(s['content_kept']['size'])}, {pct(s['content_kept']['grey'])}",
        ),
        ("swap: shape of the z donor instead", pct(s["shape_of_z_donor"])),
        ("swap: centre error to the z donor's path", f"{s['centre_error_px']:.2f} px"),
        (
            "swap: centre error to the f donor's path (no motion transfer)",
            f"{s['centre_error_to_f_donor_px']:.2f} px",
        ),
        ("fixed f, z from the prior: shape kept", pct(f["content_kept"]["shape"])),
        ("fixed f: frames showing the sequence's shape", pct(f["shape_constant_over_time"])),
        ("fixed z, f from the prior: centre error", f"{z['centre_error_px']:.2f} px"),
        (
            f"fixed z: sample pairs of different shapes (data: {pct(z['shapes_differ_in_data'])})",
            pct(z["shapes_differ"]),
        ),
        (
            "reconstruction: shape kept, centre error",
            f"{pct(r['content_kept']['shape'])}, {r['centre_error_px']:.2f} px",
        ),
    ]
    lines = [f"| measure ({scores['pairs']} held-out pairs) | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines) + "\n"
