"""Tests of the Sprites builder (dsvae.data.sprites; Li & Mandt 2018, Sec. 4.1).

The LPC sheets are licensed third-party data kept beside the repository in
``../shared/data/lpc-sprites``; the tests read them from there (and copy them only into
pytest's temporary folders) and skip when they are absent.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dsvae.data.sprites as sprites
from dsvae.data import SequenceDataset, prepare_frames
from dsvae.data.sprites import (
    ACTION_NAMES,
    ACTIONS,
    ATTRIBUTES,
    DIRECTIONS,
    build_sprites,
    character_attributes,
    load_sheets,
    render_character,
    render_sequences,
)
from dsvae.errors import DataError

SHEETS = Path(__file__).resolve().parents[2] / "shared" / "data" / "lpc-sprites"
LAYER_FILES = [f"{f}/{i}.png" for f in ("body", "legs", "torso", "hair") for i in range(6)]
ALL_FILES = [*LAYER_FILES, "feet/1.png", "split_seed423.json"]
# A character wearing torso/3 (steel plate), whose used tiles have partly transparent pixels.
PLATE = 216 * 2 + 36 * 4 + 6 * 3 + 5


@pytest.fixture(scope="module")
def sheets_dir() -> Path:
    if not SHEETS.is_dir():
        pytest.skip(
            f"LPC sprite sheets not found at {SHEETS}; they are licensed third-party data "
            "shipped beside the repo"
        )
    return SHEETS


@pytest.fixture(scope="module")
def sheets(sheets_dir: Path) -> sprites.SpriteSheets:
    return load_sheets(sheets_dir)


@pytest.fixture(scope="module")
def split(sheets_dir: Path) -> dict:
    return json.loads((sheets_dir / "split_seed423.json").read_text())


@pytest.fixture(scope="module")
def subset(split: dict) -> list[int]:
    """Three train and two test characters, listed out of split order on purpose."""
    return [
        split["test_ids"][1],
        split["train_ids"][2],
        split["test_ids"][0],
        *split["train_ids"][:2],
    ]


@pytest.fixture(scope="module")
def small_build(sheets_dir: Path, subset: list[int], tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sprites") / "out"
    build_sprites(sheets_dir, out, characters=subset)
    return out


def _layers(c: int) -> list[Image.Image]:
    """The five RGBA sheets of character c, bottom first, decoded here independently."""
    names = [f"body/{c // 216}", f"legs/{c // 36 % 6}", f"torso/{c // 6 % 6}", f"hair/{c % 6}"]
    out = []
    for name in [*names, "feet/1"]:
        with Image.open(SHEETS / f"{name}.png") as image:
            out.append(image.convert("RGBA"))
    return out


def _hand_tile(layers: list[Image.Image], row: int, col: int) -> np.ndarray:
    """Crop tile (row, col) from each layer, then composite those tiles on black: (64, 64, 3)."""
    box = (64 * col, 64 * row, 64 * col + 64, 64 * row + 64)
    canvas = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    for layer in layers:
        canvas = Image.alpha_composite(canvas, layer.crop(box))
    return np.asarray(canvas.convert("RGB"))


def _full_sheet(layers: list[Image.Image]) -> np.ndarray:
    """The whole 832x1344 stack composited on black, as RGB (1344, 832, 3)."""
    canvas = Image.new("RGBA", (832, 1344), (0, 0, 0, 255))
    for layer in layers:
        canvas = Image.alpha_composite(canvas, layer)
    return np.asarray(canvas)[..., :3]


def _copy_sheets(dst: Path) -> Path:
    """A writable copy of the sheets folder (in a pytest temporary folder only)."""
    for name in ALL_FILES:
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHEETS / name, dst / name)
    return dst


def _assert_nothing_left(parent: Path, out: Path) -> None:
    assert not out.exists()
    assert [p.name for p in parent.iterdir() if p.name.startswith(".")] == []


# ---------------------------------------------------------------- sheets and split


def test_split_file_is_numpy_legacy_permutation(split: dict) -> None:
    order = np.random.RandomState(423).permutation(1296).tolist()
    assert split["order"] == order
    assert split["train_ids"] == order[:1000] and split["test_ids"] == order[1000:]
    assert not set(split["train_ids"]) & set(split["test_ids"])


def test_load_sheets_reads_25_rgba_layers_and_the_split(sheets, split: dict) -> None:
    assert {k: len(v) for k, v in sheets.layers.items()} == {
        "body": 6,
        "legs": 6,
        "torso": 6,
        "hair": 6,
        "feet": 1,
    }
    for images in sheets.layers.values():
        assert all(im.mode == "RGBA" and im.size == (832, 1344) for im in images)
    assert list(sheets.order) == split["order"]
    assert list(sheets.train_ids) == split["train_ids"]
    assert list(sheets.test_ids) == split["test_ids"]


def test_character_ids_decode_into_the_four_slots() -> None:
    seen = {character_attributes(c) for c in range(1296)}
    assert len(seen) == 1296
    for c in (0, 1, 6, 36, 216, 1295, PLATE):
        skin, pants, tops, hair = character_attributes(c)
        assert 216 * skin + 36 * pants + 6 * tops + hair == c
    assert character_attributes(PLATE) == (2, 4, 3, 5)
    with pytest.raises(DataError, match=r"0\.\.1295"):
        character_attributes(1296)


def test_label_names_follow_3_action_plus_direction() -> None:
    assert ATTRIBUTES == ("skin", "pants", "tops", "hair")
    assert ACTION_NAMES[0] == "walk-front" and ACTION_NAMES[4] == "spellcast-left"
    for a, action in enumerate(ACTIONS):
        for d, direction in enumerate(DIRECTIONS):
            assert ACTION_NAMES[3 * a + d] == f"{action}-{direction}"


# ---------------------------------------------------------------- compositing


def test_every_tile_equals_a_hand_made_composite(sheets) -> None:
    frames = render_character(sheets, PLATE)
    layers = _layers(PLATE)
    assert set(frames) == {(a, d) for a in ACTIONS for d in DIRECTIONS}
    for (action, direction), seq in frames.items():
        assert seq.dtype == np.uint8 and seq.shape == (8, 64, 64, 3)
        row = sprites.ROWS[action][DIRECTIONS.index(direction)]
        for t, col in enumerate(sprites.COLUMNS[action]):
            np.testing.assert_array_equal(seq[t], _hand_tile(layers, row, col))


def test_render_sequences_is_render_character_in_label_order(sheets) -> None:
    stacked = render_sequences(sheets, 7)
    frames = render_character(sheets, 7)
    assert stacked.shape == (9, 8, 64, 64, 3)
    for label, name in enumerate(ACTION_NAMES):
        np.testing.assert_array_equal(stacked[label], frames[tuple(name.split("-"))])


def test_tiles_come_from_the_readme_rows_and_columns(sheets) -> None:
    c = 1000
    frames = render_character(sheets, c)
    full = _full_sheet(_layers(c))

    def tile(row: int, col: int) -> np.ndarray:
        return full[64 * row : 64 * row + 64, 64 * col : 64 * col + 64]

    np.testing.assert_array_equal(frames["walk", "front"][0], tile(10, 8))
    np.testing.assert_array_equal(frames["spellcast", "left"][6], tile(1, 4))
    np.testing.assert_array_equal(frames["slash", "right"][7], tile(15, 0))
    np.testing.assert_array_equal(frames["walk", "left"][1], tile(9, 1))


def test_partly_transparent_pixels_are_blended_not_pasted(sheets) -> None:
    layers = _layers(PLATE)
    plate = np.asarray(layers[2].crop((64, 576, 128, 640)))  # torso/3, tile (9, 1)
    partial = (plate[..., 3] > 0) & (plate[..., 3] < 255)
    assert partial.any()
    below = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    for layer in layers[:2]:
        below = Image.alpha_composite(below, layer.crop((64, 576, 128, 640)))
    a = plate[..., 3:4].astype(np.float64) / 255
    blend = a * plate[..., :3] + (1 - a) * np.asarray(below)[..., :3]
    frame = render_character(sheets, PLATE)["walk", "left"][1].astype(np.float64)  # tile (9, 1)
    hair_or_boots = np.stack(
        [np.asarray(im.crop((64, 576, 128, 640)))[..., 3] for im in layers[3:]]
    )
    free = partial & (hair_or_boots == 0).all(0)
    assert free.any()
    assert np.abs(frame[free] - blend[free]).max() <= 1  # the "over" operator, up to rounding
    assert (frame[free] != plate[..., :3][free]).any()  # not a binary paste of the plate


def test_background_is_black_and_the_character_is_not(sheets) -> None:
    for seq in render_sequences(sheets, 0):
        assert (seq[:, 0, 0] == 0).all()  # the top-left corner is background in every frame
        assert (seq.reshape(8, -1).max(axis=1) > 0).all()


def test_boots_are_drawn_on_top(sheets) -> None:
    c = 36 * 2  # red trousers under the golden boots
    frame = render_character(sheets, c)["walk", "front"][0]  # tile (10, 8)
    boots = np.asarray(_layers(c)[4].crop((512, 640, 576, 704)))
    opaque = boots[..., 3] == 255
    assert opaque.sum() > 20
    np.testing.assert_array_equal(frame[opaque], boots[..., :3][opaque])


# ---------------------------------------------------------------- building


def test_small_build_has_labels_in_upstream_order(small_build: Path, split, subset) -> None:
    for name, ids in (("train", split["train_ids"]), ("test", split["test_ids"])):
        chars = [c for c in ids if c in subset]  # split order, not the order asked for
        with np.load(small_build / name / "labels.npz") as archive:
            labels = {k: archive[k] for k in archive.files}
        n = len(chars)
        assert {k: v.dtype for k, v in labels.items()} == dict.fromkeys(
            ("character", "action", "attributes"), np.int64
        )
        np.testing.assert_array_equal(labels["character"], np.tile(chars, 9))
        np.testing.assert_array_equal(labels["action"], np.repeat(np.arange(9), n))
        expected = [character_attributes(c) for c in np.tile(chars, 9)]
        np.testing.assert_array_equal(labels["attributes"], expected)


def test_small_build_frames_are_the_rendered_sequences(small_build: Path, sheets) -> None:
    ds = SequenceDataset(small_build / "test")
    chars = ds.labels["character"]
    n = len(set(chars.tolist()))
    assert ds.num_sequences == 9 * n and ds.length == 8 and ds.frame_shape == (3, 64, 64)
    for i, c in enumerate(chars[:n]):
        rendered = render_sequences(sheets, int(c))
        for label in range(9):
            np.testing.assert_array_equal(ds[label * n + i].numpy(), rendered[label])
    x = prepare_frames(ds[0][None])
    assert x.shape == (1, 8, 3, 64, 64) and float(x.max()) <= 1.0


def test_small_build_meta(small_build: Path, split, subset) -> None:
    meta = json.loads((small_build / "train" / "meta.json").read_text())
    assert meta["name"] == "sprites" and meta["seed"] == 423
    assert "CC-BY-SA 3.0" in meta["licence"] and "Redshrike" in meta["credits"]
    assert "Li & Mandt 2018" in meta["source"]
    assert meta["split"]["characters"] == [c for c in split["train_ids"] if c in subset]
    assert meta["frames_shape"] == [27, 8, 64, 64, 3]
    assert sorted(p.name for p in small_build.iterdir()) == ["test", "train"]
    assert [p.name for p in small_build.parent.iterdir()] == ["out"]  # no temp folders


def test_subset_must_hold_both_splits(sheets_dir: Path, split, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="at least one of each"):
        build_sprites(sheets_dir, tmp_path / "out", characters=split["train_ids"][:2])
    with pytest.raises(DataError, match="distinct ids"):
        build_sprites(sheets_dir, tmp_path / "out", characters=[1, 1])
    _assert_nothing_left(tmp_path, tmp_path / "out")


# ---------------------------------------------------------------- bad input and atomicity


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"does not exist; it must hold body/"):
        build_sprites(tmp_path / "nowhere", tmp_path / "out")
    _assert_nothing_left(tmp_path, tmp_path / "out")


def test_missing_layer_file(sheets_dir: Path, tmp_path: Path) -> None:
    copy = _copy_sheets(tmp_path / "sheets")
    (copy / "hair" / "3.png").unlink()
    with pytest.raises(DataError, match=r"hair/3\.png is missing"):
        build_sprites(copy, tmp_path / "out")
    _assert_nothing_left(tmp_path, tmp_path / "out")


def test_wrong_size_sheet(sheets_dir: Path, tmp_path: Path) -> None:
    copy = _copy_sheets(tmp_path / "sheets")
    Image.new("RGBA", (100, 100)).save(copy / "torso" / "2.png")
    with pytest.raises(DataError, match=r"torso/2\.png is 100x100; expected 832x1344 \(13x21"):
        load_sheets(copy)


def test_unreadable_sheet(sheets_dir: Path, tmp_path: Path) -> None:
    copy = _copy_sheets(tmp_path / "sheets")
    (copy / "legs" / "0.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"legs/0\.png is not a readable PNG"):
        load_sheets(copy)


def test_bad_split_file(sheets_dir: Path, tmp_path: Path) -> None:
    copy = _copy_sheets(tmp_path / "sheets")
    file = copy / "split_seed423.json"
    data = json.loads(file.read_text())
    data["test_ids"] = data["test_ids"][:-1] + data["train_ids"][:1]
    file.write_text(json.dumps(data))
    with pytest.raises(DataError, match="1000 train and 296 test ids, disjoint"):
        load_sheets(copy)
    file.write_text("{")
    with pytest.raises(DataError, match="not valid"):
        load_sheets(copy)
    file.unlink()
    with pytest.raises(DataError, match="split file .* is missing"):
        load_sheets(copy)


def test_existing_output_needs_overwrite(sheets_dir: Path, split, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    chars = [split["train_ids"][0], split["test_ids"][0]]
    with pytest.raises(DataError, match=r"exists; pass --overwrite"):
        build_sprites(sheets_dir, out, characters=chars)
    with pytest.raises(DataError, match="not a Sprites data set"):
        build_sprites(sheets_dir, out, characters=chars, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_overwrite_replaces_an_old_build(sheets_dir: Path, split, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_sprites(sheets_dir, out, characters=[split["train_ids"][0], split["test_ids"][0]])
    chars = [split["train_ids"][1], split["test_ids"][1]]
    train, test = build_sprites(sheets_dir, out, characters=chars, overwrite=True)
    assert (train, test) == (out / "train", out / "test")
    assert SequenceDataset(test).labels["character"].tolist() == [chars[1]] * 9
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_failure_in_the_test_split_leaves_nothing(
    sheets_dir: Path, split, tmp_path: Path, monkeypatch
) -> None:
    meta = sprites._meta

    def failing_meta(name: str, *args) -> dict:
        if name == "test":
            raise RuntimeError("disk full")
        return meta(name, *args)

    monkeypatch.setattr(sprites, "_meta", failing_meta)
    chars = [split["train_ids"][0], split["test_ids"][0]]
    with pytest.raises(RuntimeError, match="disk full"):
        build_sprites(sheets_dir, tmp_path / "out", characters=chars)
    _assert_nothing_left(tmp_path, tmp_path / "out")


# ---------------------------------------------------------------- the whole set


@pytest.mark.slow
def test_full_build(sheets_dir: Path, split, tmp_path: Path) -> None:
    train, test = build_sprites(sheets_dir, tmp_path / "sprites")
    for path, ids in ((train, split["train_ids"]), (test, split["test_ids"])):
        ds = SequenceDataset(path)
        assert ds.frames.shape == (9 * len(ids), 8, 64, 64, 3)
        np.testing.assert_array_equal(ds.labels["character"], np.tile(ids, 9))
        np.testing.assert_array_equal(ds.labels["action"], np.repeat(np.arange(9), len(ids)))
        assert ds.labels["attributes"].min() == 0 and ds.labels["attributes"].max() == 5
    ds = SequenceDataset(test)
    c = split["test_ids"][-1]
    rendered = render_character(load_sheets(sheets_dir), c)
    np.testing.assert_array_equal(ds[8 * 296 + 295].numpy(), rendered["slash", "right"])
