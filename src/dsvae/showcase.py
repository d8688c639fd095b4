"""Pictures of a trained model at work: PNG grids and GIFs for each operation of Section 2.

Each ``write_*`` function runs one operation from :mod:`dsvae.ops` on a batch of
model-space frames and writes a PNG (a panel per row block) plus a GIF for
image data, returning the paths it wrote.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dsvae import ops
from dsvae.data import SequenceDataset, prepare_frames, require_same_frames
from dsvae.errors import DataError
from dsvae.model import DSVAE
from dsvae.viz import FIG7_GREEN, save_gif, save_grid


def load_batch(
    dataset: SequenceDataset,
    n: int,
    *,
    seed: int = 0,
    indices: list[int] | None = None,
    frame_shape: tuple[int, ...] | None = None,
) -> torch.Tensor:
    """``n`` sequences (random with ``seed``, or ``indices``) as model-space frames (B, T, ...).

    With ``frame_shape`` (a model's), a data set of other frames is refused.
    """
    if frame_shape is not None:
        require_same_frames(dataset.frame_shape, frame_shape)
    if indices is None:
        gen = np.random.default_rng(seed)
        indices = sorted(
            gen.choice(len(dataset), size=min(n, len(dataset)), replace=False).tolist()
        )
    bad = [i for i in indices if not 0 <= i < len(dataset)]
    if bad:
        raise DataError(f"sequence index {bad[0]} is out of range: the data set has {len(dataset)}")
    return prepare_frames(torch.stack([dataset[i] for i in indices]))


def model_generator(model: DSVAE, seed: int) -> torch.Generator:
    """A generator on the model's device (CUDA sampling needs a CUDA generator)."""
    device = next(model.parameters()).device
    return torch.Generator(device=device).manual_seed(seed)


def _write(
    panels: dict[str, torch.Tensor], out_dir: Path, name: str, gif: bool = True
) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [save_grid(panels, out_dir / f"{name}.png")]
    first = next(iter(panels.values()))
    if gif and first.ndim == 5:  # images: one GIF with every panel's rows, top to bottom
        paths.append(save_gif(torch.cat(list(panels.values())), out_dir / f"{name}.gif"))
    return paths


def write_reconstructions(model: DSVAE, x: torch.Tensor, out_dir: Path) -> list[Path]:
    """Originals and their reconstructions (Fig. 3 a, b)."""
    return _write(
        {"data": x, "reconstruction": ops.reconstruct(model, x)}, out_dir, "reconstruction"
    )


def write_generations(
    model: DSVAE, k: int, length: int, out_dir: Path, *, seed: int = 0
) -> list[Path]:
    """Samples from the prior: free, with a shared f (Fig. 3 g), with shared z_1:T (Fig. 3 h)."""
    gen = model_generator(model, seed)
    panels = {
        "generated from the prior": ops.generate(model, k, length, generator=gen),
        "fixed f, K sampled z_1:T": ops.generate_fixed_f(model, k, length, generator=gen),
        "fixed z_1:T, K sampled f": ops.generate_fixed_z(model, k, length, generator=gen),
    }
    return _write(panels, out_dir, "generation")


def write_conditional(model: DSVAE, x: torch.Tensor, out_dir: Path, *, seed: int = 0) -> list[Path]:
    """Keep the encoded f and sample z (Fig. 3 d), and the other way round (Fig. 3 c)."""
    gen = model_generator(model, seed)
    panels = {
        "data": x,
        "encoded f, z from the prior": ops.conditional_generate(model, x, "f", generator=gen),
        "encoded z, f from the prior": ops.conditional_generate(model, x, "z", generator=gen),
    }
    return _write(panels, out_dir, "conditional")


def write_swap(model: DSVAE, x_a: torch.Tensor, x_b: torch.Tensor, out_dir: Path) -> list[Path]:
    """Feature swap (Fig. 3 e, f): content of one sequence, dynamics of the other."""
    ab, ba = ops.swap(model, x_a, x_b)
    panels = {"a": x_a, "b": x_b, "f of a, z of b": ab, "f of b, z of a": ba}
    return _write(panels, out_dir, "swap")


def show_missing(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Images (B, T, C, H, W) as RGB with the missing frames (``mask`` False) painted green."""
    if x.ndim != 5:
        return x.masked_fill(~mask[..., None], float(x.min()))
    rgb = x.expand(-1, -1, 3, -1, -1) if x.shape[2] == 1 else x
    green = torch.tensor(FIG7_GREEN, dtype=x.dtype).view(1, 1, 3, 1, 1)
    shaded = 0.35 * rgb + 0.65 * green
    return torch.where(mask[:, :, None, None, None], rgb, shaded)


def write_imputation(
    model: DSVAE, x: torch.Tensor, mask: torch.Tensor, out_dir: Path, *, seed: int = 0
) -> list[Path]:
    """Imputation / prediction: what the model saw, what it filled in, the truth."""
    gen = model_generator(model, seed)
    filled = ops.impute(model, x, mask, generator=gen)
    panels = {"observed (missing in green)": show_missing(x, mask), "imputed": filled, "truth": x}
    if x.ndim == 5 and x.shape[2] == 1:
        panels = {k: v.expand(-1, -1, 3, -1, -1) for k, v in panels.items()}
    return _write(panels, out_dir, "imputation")


def parse_mask(text: str, length: int) -> torch.Tensor:
    """A mask string of ``length`` characters, 1 = observed and 0 = missing, e.g. ``11110011``."""
    text = text.strip()
    if len(text) != length or set(text) - {"0", "1"}:
        raise DataError(
            f"--mask must be {length} characters of 0 (missing) and 1 (observed), got {text!r}"
        )
    if "1" not in text:
        raise DataError("--mask hides every frame; observe at least one frame")
    return torch.tensor([c == "1" for c in text])
