"""Pictures a person looks at: sequence grids, stacked panels, animated GIFs, heat maps.

Inputs are sequences of frames in model space, as torch tensors or numpy arrays:

- images ``(R, T, C, H, W)``, float in [0, 1] (clipped) or uint8, with C = 1 or 3;
- feature vectors ``(R, T, D)``, float (e.g. spectra), drawn as D x T heat maps.

R is rows (one sequence per row), T is time (left to right). Outputs are uint8
RGB arrays ``(H, W, 3)``; every file is written atomically (`dsvae.atomic.atomic_path`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeAlias

import matplotlib
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from dsvae.atomic import atomic_path
from dsvae.errors import DataError

Frames: TypeAlias = torch.Tensor | np.ndarray
Panels: TypeAlias = Mapping[str, Frames] | Sequence[tuple[str, Frames]]

FIG7_GREEN = (0.1, 0.85, 0.2)
"""The colour of missing frames, as in the paper's Fig. 7 (RGB in [0, 1])."""

_EXPECTED = "frames must be (R, T, C, H, W) images or (R, T, D) vectors"
_TARGET_CELL_PX = 128  # default_scale aims at cells of about this height
_TITLE_MARGIN = 3  # pixels around a title's text


def default_scale(height: int) -> int:
    """Integer upscale that makes a cell of ``height`` pixels about 100-128 px tall.

    4 for 32 px, 2 for 64 px, 8 for 16 px, 1 for 128 px and above.
    """
    if height < 1:
        raise ValueError(f"height must be a positive number of pixels, got {height}")
    return max(1, _TARGET_CELL_PX // height)


def sequence_grid(
    frames: Frames,
    *,
    scale: int = 1,
    pad: int = 1,
    pad_value: int = 255,
    cmap: str = "magma",
    vrange: tuple[float, float] | None = None,
) -> np.ndarray:
    """One row per sequence, time left to right, as a uint8 RGB image (Hgrid, Wgrid, 3).

    Images (R, T, C, H, W): cells of (H*scale, W*scale) with ``pad`` pixels of
    ``pad_value`` between cells and around the border, so
    ``Hgrid = R*H*scale + (R+1)*pad`` and ``Wgrid = T*W*scale + (T+1)*pad``.
    Vectors (R, T, D): each row is one D x T heat map (time on x, dimension 0 at
    the bottom) in colormap ``cmap``, normalised by ``vrange`` (default: the
    global min/max of ``frames``), so ``Hgrid = R*D*scale + (R+1)*pad`` and
    ``Wgrid = T*scale + 2*pad``.
    """
    _check_layout(scale, pad, pad_value)
    cells = _cells(_to_numpy(frames), cmap, vrange)  # (R, T', h, w, 3)
    cells = cells.repeat(scale, axis=2).repeat(scale, axis=3)
    return _tile(cells, pad, pad_value)


def stack_grids(
    panels: Panels,
    *,
    scale: int = 1,
    pad: int = 1,
    pad_value: int = 255,
    cmap: str = "magma",
) -> np.ndarray:
    """Grids stacked top to bottom, each under a title strip, as uint8 RGB (H, W, 3).

    ``panels`` maps title -> frames (a dict, or a list of ``(title, frames)``
    pairs), e.g. ``{"original": x, "reconstruction": x_hat}``. Vector panels
    share one colour scale so that they can be compared. Narrow panels are
    padded on the right with ``pad_value``.
    """
    items = list(panels.items()) if isinstance(panels, Mapping) else list(panels)
    if not items:
        raise DataError("stack_grids needs at least one panel, got none")
    arrays = [(str(title), _to_numpy(frames)) for title, frames in items]
    vectors = [x for _, x in arrays if x.ndim == 3]
    vrange = _value_range(np.concatenate([v.ravel() for v in vectors])) if vectors else None
    grids = [
        sequence_grid(x, scale=scale, pad=pad, pad_value=pad_value, cmap=cmap, vrange=vrange)
        for _, x in arrays
    ]
    font = ImageFont.load_default(size=max(10, 6 * scale))  # legible at any cell size
    width = max(max(g.shape[1] for g in grids), *(_text_width(t, font) for t, _ in arrays))
    blocks = []
    for (title, _), grid in zip(arrays, grids, strict=True):
        blocks.append(_title_strip(title, width, pad_value, font))
        right = np.full((grid.shape[0], width - grid.shape[1], 3), pad_value, np.uint8)
        blocks.append(np.concatenate([grid, right], axis=1))
    return np.concatenate(blocks, axis=0)


def save_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a uint8 image (H, W), (H, W, 3) or (H, W, 4) to ``path`` as PNG, atomically."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (
        image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))
    ):
        raise DataError(
            "image must be uint8 (H, W), (H, W, 3) or (H, W, 4), "
            f"got {image.dtype} of shape {tuple(image.shape)}"
        )
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return path


def save_grid(
    frames: Frames | Panels,
    path: str | os.PathLike,
    *,
    scale: int | None = None,
    pad: int = 1,
    titles: Sequence[str] | None = None,
) -> Path:
    """Save `sequence_grid` of ``frames`` (or `stack_grids` of panels) as a PNG.

    Panels are a dict title -> frames, or a list of frames with ``titles``.
    ``scale=None`` picks `default_scale` of the tallest cell.
    """
    if titles is not None:
        if isinstance(frames, Mapping) or len(titles) != len(frames):
            raise DataError(
                f"titles needs a list of frames of the same length, got {len(titles)} titles "
                f"for {type(frames).__name__} of length {len(frames)}"
            )
        frames = dict(zip(titles, frames, strict=True))
    if isinstance(frames, Mapping):
        arrays = {str(t): _to_numpy(x) for t, x in frames.items()}
        if not arrays:
            raise DataError("save_grid needs at least one panel, got an empty dict")
        if scale is None:
            scale = default_scale(max(_cell_height(x) for x in arrays.values()))
        return save_png(stack_grids(arrays, scale=scale, pad=pad), path)
    x = _to_numpy(frames)
    if scale is None:
        scale = default_scale(_cell_height(x))
    return save_png(sequence_grid(x, scale=scale, pad=pad), path)


def save_gif(
    frames: Frames,
    path: str | os.PathLike,
    *,
    fps: float = 4,
    scale: int = 2,
    pad: int = 1,
    pad_value: int = 255,
    columns: int = 8,
) -> Path:
    """Save image sequences (R, T, C, H, W) as an animated GIF that loops forever.

    GIF frame t shows frame t of all R sequences side by side, wrapped into a
    grid of at most ``columns`` columns (unused cells are ``pad_value``). One
    palette is shared by all frames so colours do not flicker. Pillow merges
    identical consecutive frames into one longer frame.
    """
    x = _to_numpy(frames)
    if x.ndim != 5:
        raise DataError(
            "GIFs are for image sequences (R, T, C, H, W); got vector sequences of shape "
            f"{tuple(x.shape)}; use save_grid for a heat map"
        )
    if fps <= 0 or columns < 1:
        raise ValueError(f"fps must be > 0 and columns >= 1, got fps={fps}, columns={columns}")
    _check_layout(scale, pad, pad_value)
    images = _with_shared_palette(_gif_pictures(x, scale, pad, pad_value, columns))
    path = Path(path)
    with atomic_path(path) as tmp:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=round(1000 / fps),
            loop=0,
        )
    return path


def _gif_pictures(
    x: np.ndarray, scale: int, pad: int, pad_value: int, columns: int
) -> list[np.ndarray]:
    """Images (R, T, C, H, W) -> T grids of the R frames at each time, <= ``columns`` wide."""
    cells = _cells(x, "magma", None).repeat(scale, axis=2).repeat(scale, axis=3)  # (R,T,h,w,3)
    n_rows, n_cols = math.ceil(x.shape[0] / columns), min(x.shape[0], columns)
    blank = np.full((n_rows * n_cols - x.shape[0], *cells.shape[1:]), pad_value, np.uint8)
    cells = np.concatenate([cells, blank]).swapaxes(0, 1)  # (T, rows*cols, h, w, 3)
    return [_tile(c.reshape(n_rows, n_cols, *c.shape[1:]), pad, pad_value) for c in cells]


def _with_shared_palette(pictures: list[np.ndarray]) -> list[Image.Image]:
    """RGB pictures -> palette images that share one 256-colour palette (no flicker)."""
    palette = Image.fromarray(np.concatenate(pictures, axis=0)).quantize(256)
    return [
        Image.fromarray(p).quantize(palette=palette, dither=Image.Dither.NONE) for p in pictures
    ]


def _to_numpy(frames: Frames) -> np.ndarray:
    """Validated numpy copy of ``frames``: (R, T, C, H, W) or (R, T, D), non-empty, finite."""
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu()
        if frames.is_floating_point() and frames.dtype not in (torch.float32, torch.float64):
            frames = frames.float()
        frames = frames.numpy()
    x = np.asarray(frames)
    if x.ndim not in (3, 5):
        hint = "; add a row axis with frames[None]" if x.ndim == 4 else ""
        raise DataError(f"{_EXPECTED}, got shape {tuple(x.shape)}{hint}")
    if x.ndim == 3 and x.dtype == np.uint8:
        raise DataError(
            f"{_EXPECTED}, got uint8 of shape {tuple(x.shape)}; uint8 frames are images, "
            "so add axes (one C x H x W image is frames[None, None]) or pass float vectors"
        )
    if x.size == 0:
        raise DataError(f"{_EXPECTED} with no zero-sized axis, got shape {tuple(x.shape)}")
    if x.ndim == 5 and x.shape[2] not in (1, 3):
        hint = " (channels last? move C to axis 2)" if x.shape[-1] in (1, 3) else ""
        raise DataError(f"{_EXPECTED} with C = 1 or 3, got shape {tuple(x.shape)}{hint}")
    allowed = np.issubdtype(x.dtype, np.floating) or x.dtype == np.uint8
    if not allowed and not (x.ndim == 3 and np.issubdtype(x.dtype, np.integer)):
        raise DataError(f"images must be float in [0, 1] or uint8, got dtype {x.dtype}")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        n_bad = int((~np.isfinite(x)).sum())
        raise DataError(f"frames contain {n_bad} NaN or infinite values, shape {tuple(x.shape)}")
    return x


def _cells(x: np.ndarray, cmap: str, vrange: tuple[float, float] | None) -> np.ndarray:
    """uint8 RGB cells (R, T', h, w, 3): image frames, or one heat map per vector row."""
    if x.ndim == 3:  # (R, T, D) -> (R, 1, D, T, 3)
        lo, hi = vrange if vrange is not None else _value_range(x)
        norm = (x.astype(np.float64) - lo) / (hi - lo) if hi > lo else np.zeros(x.shape)
        heat = np.flip(np.clip(norm, 0.0, 1.0).swapaxes(1, 2), axis=1)  # (R, D, T), dim 0 at bottom
        rgb = matplotlib.colormaps[cmap](heat, bytes=True)[..., :3]
        return rgb[:, None]
    if x.dtype != np.uint8:
        x = np.round(np.clip(x, 0.0, 1.0) * 255).astype(np.uint8)
    x = x.transpose(0, 1, 3, 4, 2)  # (R, T, H, W, C)
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


def _tile(cells: np.ndarray, pad: int, pad_value: int) -> np.ndarray:
    """Cells (R, T, h, w, 3) -> grid (R*h + (R+1)*pad, T*w + (T+1)*pad, 3)."""
    rows, cols, h, w, _ = cells.shape
    framed = np.pad(cells, ((0, 0), (0, 0), (pad, 0), (pad, 0), (0, 0)), constant_values=pad_value)
    grid = framed.transpose(0, 2, 1, 3, 4).reshape(rows * (h + pad), cols * (w + pad), 3)
    return np.pad(grid, ((0, pad), (0, pad), (0, 0)), constant_values=pad_value)


def _title_strip(
    title: str, width: int, pad_value: int, font: ImageFont.ImageFont | ImageFont.FreeTypeFont
) -> np.ndarray:
    """A (h, width, 3) strip of ``pad_value`` with ``title`` written at its left."""
    height = font.getbbox("Ag")[3] + 2 * _TITLE_MARGIN
    strip = Image.new("RGB", (width, height), (pad_value,) * 3)
    ink = (0, 0, 0) if pad_value >= 128 else (255, 255, 255)
    ImageDraw.Draw(strip).text((_TITLE_MARGIN, _TITLE_MARGIN), title, fill=ink, font=font)
    return np.asarray(strip)


def _text_width(title: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> int:
    return int(math.ceil(font.getbbox(title)[2])) + 2 * _TITLE_MARGIN if title else 0


def _value_range(x: np.ndarray) -> tuple[float, float]:
    return float(x.min()), float(x.max())


def _cell_height(x: np.ndarray) -> int:
    """Height in pixels of one unscaled cell: H for images, D for vectors."""
    return int(x.shape[3] if x.ndim == 5 else x.shape[2])


def _check_layout(scale: int, pad: int, pad_value: int) -> None:
    if not (isinstance(scale, int | np.integer) and scale >= 1):
        raise ValueError(f"scale must be an integer >= 1, got {scale!r}")
    if not (isinstance(pad, int | np.integer) and pad >= 0):
        raise ValueError(f"pad must be an integer >= 0, got {pad!r}")
    if not 0 <= pad_value <= 255:
        raise ValueError(f"pad_value must be in 0..255, got {pad_value!r}")


def save_figure(fig, path: str | os.PathLike, *, dpi: int = 110) -> Path:
    """Write a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return path
