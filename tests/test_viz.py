"""Tests for dsvae.viz: grid geometry, colours, heat maps, PNG/GIF files, atomic writes."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from dsvae.viz import (
    default_scale,
    save_gif,
    save_grid,
    save_png,
    sequence_grid,
    stack_grids,
)

MAGMA = matplotlib.colormaps["magma"]


def _images(
    r: int = 2, t: int = 3, c: int = 3, h: int = 4, w: int = 5, seed: int = 0
) -> np.ndarray:
    return np.random.default_rng(seed).random((r, t, c, h, w)).astype(np.float32)  # (R, T, C, H, W)


def _no_tmp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    ("height", "scale"), [(16, 8), (28, 4), (32, 4), (64, 2), (128, 1), (500, 1)]
)
def test_default_scale_aims_at_about_128_px(height: int, scale: int) -> None:
    assert default_scale(height) == scale


def test_default_scale_rejects_non_positive_height() -> None:
    with pytest.raises(ValueError, match="positive"):
        default_scale(0)


@pytest.mark.parametrize(
    ("r", "t", "c", "h", "w", "scale", "pad"),
    [(2, 3, 3, 4, 5, 1, 1), (1, 1, 1, 8, 8, 3, 0), (3, 4, 1, 2, 6, 2, 4)],
)
def test_image_grid_size_follows_formula(r, t, c, h, w, scale, pad) -> None:
    grid = sequence_grid(_images(r, t, c, h, w), scale=scale, pad=pad)
    assert grid.dtype == np.uint8
    assert grid.shape == (r * h * scale + (r + 1) * pad, t * w * scale + (t + 1) * pad, 3)


def test_known_pixel_lands_in_its_cell_with_its_colour() -> None:
    frames = np.zeros((2, 3, 3, 4, 5), np.float32)
    frames[1, 2, :, 3, 4] = [0.2, 0.4, 1.0]  # row 1, time 2, pixel (y=3, x=4)
    scale, pad = 3, 2
    grid = sequence_grid(frames, scale=scale, pad=pad, pad_value=7)
    y0 = pad + 1 * (4 * scale + pad) + 3 * scale
    x0 = pad + 2 * (5 * scale + pad) + 4 * scale
    block = grid[y0 : y0 + scale, x0 : x0 + scale]
    assert (block == [51, 102, 255]).all()
    coloured = (grid != 0) & (grid != 7)
    assert coloured.any(axis=-1).sum() == scale * scale  # nothing else is coloured


def test_padding_has_pad_value_around_and_between_cells() -> None:
    grid = sequence_grid(np.ones((2, 2, 1, 3, 3), np.float32), scale=2, pad=1, pad_value=9)
    for line in (0, 7, 14):  # horizontal and vertical pad lines
        assert (grid[line] == 9).all()
        assert (grid[:, line] == 9).all()
    assert (grid[1:7, 1:7] == 255).all()


def test_grayscale_becomes_rgb_with_equal_channels() -> None:
    grid = sequence_grid(_images(c=1), scale=2)
    assert grid.shape[-1] == 3
    assert (grid[..., 0] == grid[..., 1]).all() and (grid[..., 1] == grid[..., 2]).all()
    assert len(np.unique(grid[..., 0])) > 10


def test_uint8_passes_through_and_torch_equals_numpy() -> None:
    frames = np.random.default_rng(1).integers(0, 256, (2, 3, 3, 4, 4), dtype=np.uint8)
    grid = sequence_grid(torch.from_numpy(frames), pad=0)
    assert (grid[:4, 4:8] == frames[0, 1].transpose(1, 2, 0)).all()
    floats = torch.rand(2, 3, 1, 4, 4, requires_grad=True)
    assert (sequence_grid(floats) == sequence_grid(floats.detach().numpy())).all()


def test_float_images_outside_unit_range_are_clipped() -> None:
    frames = np.array([-0.5, 0.0, 1.0, 1.7], np.float32).reshape(1, 1, 1, 1, 4)
    grid = sequence_grid(frames, pad=0)
    assert grid[0, :, 0].tolist() == [0, 0, 255, 255]


def test_vector_heat_map_size_colours_and_orientation() -> None:
    vectors = np.zeros((2, 6, 4))  # (R, T, D)
    vectors[0, 2, 0] = 5.0  # row 0, time 2, dimension 0 -> bottom of row 0's map
    vectors[1, 0, 3] = -1.0  # global minimum
    scale, pad = 2, 1
    grid = sequence_grid(vectors, scale=scale, pad=pad)
    assert grid.shape == (2 * 4 * scale + 3 * pad, 6 * scale + 2 * pad, 3)
    bottom_of_row0 = pad + 4 * scale - 1
    assert grid[bottom_of_row0, pad + 2 * scale].tolist() == list(MAGMA(1.0, bytes=True)[:3])
    top_of_row1 = 2 * pad + 4 * scale
    assert grid[top_of_row1, pad].tolist() == list(MAGMA(0.0, bytes=True)[:3])
    zero_colour = MAGMA(1 / 6, bytes=True)[:3]  # 0 normalised by min -1, max 5
    assert grid[pad, pad].tolist() == list(zero_colour)


def test_constant_vectors_map_to_first_colour() -> None:
    grid = sequence_grid(np.full((1, 3, 2), 4.0), pad=0)
    assert (grid == MAGMA(0.0, bytes=True)[:3]).all()


def test_stack_grids_puts_each_grid_under_a_title() -> None:
    a, b = _images(r=2, w=5, seed=1), _images(r=1, w=3, seed=2)
    stacked = stack_grids({"original": a, "reconstruction": b}, scale=2)
    ga, gb = sequence_grid(a, scale=2), sequence_grid(b, scale=2)
    strip = (stacked.shape[0] - ga.shape[0] - gb.shape[0]) // 2
    assert strip > 5 and stacked.shape[0] == ga.shape[0] + gb.shape[0] + 2 * strip
    assert (stacked[strip : strip + ga.shape[0], : ga.shape[1]] == ga).all()
    lower = stacked[2 * strip + ga.shape[0] :]
    assert (lower[:, : gb.shape[1]] == gb).all()
    assert (lower[:, gb.shape[1] :] == 255).all()  # narrower panel padded on the right
    assert (stacked[:strip] < 100).any()  # title ink
    pairs = stack_grids([("original", a), ("reconstruction", b)], scale=2)
    assert (pairs == stacked).all()


def test_stack_grids_share_one_colour_scale_for_vectors() -> None:
    v = np.linspace(0.0, 1.0, 12).reshape(1, 3, 4)
    stacked = stack_grids({"a": v, "b": v * 0.5}, pad=0)
    top = MAGMA(1.0, bytes=True)[:3]
    assert (stacked == top).all(axis=-1).sum() == 1  # only a's maximum reaches the top colour


def test_png_round_trip_equals_array(tmp_path: Path) -> None:
    image = sequence_grid(_images(), scale=2)
    path = save_png(image, tmp_path / "sub" / "grid.png")
    assert path == tmp_path / "sub" / "grid.png"
    assert (np.asarray(Image.open(path)) == image).all()
    assert _no_tmp_files(path.parent)


def test_save_png_rejects_float_images(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"uint8 \(H, W\)"):
        save_png(np.zeros((4, 4, 3)), tmp_path / "x.png")


def test_save_grid_uses_default_scale_and_titles(tmp_path: Path) -> None:
    frames = _images(r=1, t=2, c=3, h=32, w=32)
    plain = np.asarray(Image.open(save_grid(frames, tmp_path / "plain.png")))
    assert (plain == sequence_grid(frames, scale=4)).all()
    titled = save_grid([frames, frames], tmp_path / "t.png", scale=1, titles=["x", "x_hat"])
    expected = stack_grids({"x": frames, "x_hat": frames}, scale=1)
    assert (np.asarray(Image.open(titled)) == expected).all()
    with pytest.raises(ValueError, match="same length"):
        save_grid([frames], tmp_path / "bad.png", titles=["a", "b"])


def test_gif_has_t_frames_loops_forever_and_keeps_pixels(tmp_path: Path) -> None:
    frames = np.zeros((3, 4, 1, 6, 6), np.float32)
    for t in range(4):
        frames[:, t, 0, t, :] = 1.0  # a bar moving down: every GIF frame differs
    path = save_gif(frames, tmp_path / "anim.gif", fps=4, scale=2, pad=1)
    with Image.open(path) as gif:
        assert gif.n_frames == 4
        assert gif.info["loop"] == 0
        assert gif.info["duration"] == 250
        gif.seek(2)
        picture = np.asarray(gif.convert("RGB"))
    assert picture.shape == (6 * 2 + 2, 3 * 12 + 4, 3)  # one row of R = 3 cells
    one_row = frames[:, 2:3].swapaxes(0, 1)  # (1, R, C, H, W)
    assert (picture == sequence_grid(one_row, scale=2)).all()
    assert _no_tmp_files(tmp_path)


def test_gif_wraps_rows_into_at_most_columns(tmp_path: Path) -> None:
    frames = np.random.default_rng(3).random((10, 2, 3, 4, 4))
    with Image.open(save_gif(frames, tmp_path / "wide.gif", scale=1, pad=1)) as gif:
        assert gif.size == (8 * 4 + 9, 2 * 4 + 3)  # (width, height): 8 columns, 2 rows


def test_gif_rejects_vector_sequences(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="GIFs are for image sequences"):
        save_gif(np.zeros((2, 5, 8)), tmp_path / "v.gif")
    assert not (tmp_path / "v.gif").exists()


@pytest.mark.parametrize("write", ["png", "gif"])
def test_failed_write_leaves_existing_file_untouched(tmp_path: Path, monkeypatch, write) -> None:
    path = tmp_path / f"old.{write}"
    path.write_bytes(b"old contents")

    def broken_save(self, fp, *args, **kwargs) -> None:
        Path(fp).write_bytes(b"half a picture")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        if write == "png":
            save_png(np.zeros((4, 4, 3), np.uint8), path)
        else:
            save_gif(_images(), path)
    assert path.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (np.zeros((3, 32, 32), np.uint8), r"\(R, T, C, H, W\) images .* got uint8 of shape"),
        (np.zeros((4, 3, 8, 8)), r"got shape \(4, 3, 8, 8\); add a row axis"),
        (np.zeros((2, 3, 4, 8, 8)), r"C = 1 or 3, got shape \(2, 3, 4, 8, 8\)"),
        (np.zeros((2, 3, 8, 8, 3)), r"channels last"),
        (np.zeros((0, 3, 5)), r"no zero-sized axis, got shape \(0, 3, 5\)"),
        (np.full((1, 2, 3), np.nan), r"6 NaN or infinite values"),
        (np.full((1, 1, 1, 2, 2), np.inf), r"4 NaN or infinite values"),
        (np.zeros((1, 1, 1, 2, 2), np.int64), r"float in \[0, 1\] or uint8, got dtype int64"),
    ],
)
def test_bad_frames_raise_value_error_with_expected_shape(frames, message) -> None:
    with pytest.raises(ValueError, match=message):
        sequence_grid(frames)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"scale": 0}, "scale"), ({"pad": -1}, "pad must"), ({"pad_value": 300}, "pad_value")],
)
def test_bad_layout_arguments_raise(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        sequence_grid(_images(), **kwargs)
