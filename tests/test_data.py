"""Tests of the data-set format (dsvae.data.storage, dsvae.data.dataset) and the bouncing ball (Sec. 4.3)."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import torch

import dsvae.data.bouncing_ball as bouncing_ball
import dsvae.data.storage as dataset
from dsvae.data import (
    POLYGON_32,
    DatasetWriter,
    SequenceDataset,
    make_bouncing_ball_dataset,
    prepare_frames,
    simulate_bouncing_ball,
    split_indices,
    to_uint8_images,
    write_dataset,
)
from dsvae.errors import DataError

META = {"name": "toy", "source": "tests", "seed": 0, "licence": "none"}
DT = 0.2


@pytest.fixture(scope="module")
def balls() -> tuple[np.ndarray, np.ndarray]:
    """20 sequences of 100 frames, shared by the physics tests."""
    return simulate_bouncing_ball(20, 100, seed=1)


# ---------------------------------------------------------------- geometry helpers


def _inside(point: np.ndarray, polygon: np.ndarray) -> bool:
    """Ray casting point-in-polygon test."""
    x, y = point
    inside = False
    for (x1, y1), (x2, y2) in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _edge_distance(point: np.ndarray, polygon: np.ndarray) -> float:
    dists = []
    for a, b in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
        t = np.clip(np.dot(point - a, b - a) / np.dot(b - a, b - a), 0.0, 1.0)
        dists.append(np.linalg.norm(point - (a + t * (b - a))))
    return min(dists)


# ---------------------------------------------------------------- bouncing ball


def test_same_seed_same_data_and_sequence_independent_of_n() -> None:
    frames_a, pos_a = simulate_bouncing_ball(5, 12, seed=3)
    frames_b, pos_b = simulate_bouncing_ball(5, 12, seed=3)
    frames_c, pos_c = simulate_bouncing_ball(3, 12, seed=3)
    np.testing.assert_array_equal(frames_a, frames_b)
    np.testing.assert_array_equal(pos_a, pos_b)
    np.testing.assert_array_equal(frames_a[:3], frames_c)
    np.testing.assert_array_equal(pos_a[:3], pos_c)
    _, pos_d = simulate_bouncing_ball(5, 12, seed=4)
    assert np.abs(pos_a - pos_d).max() > 1.0
    assert len({tuple(p[0]) for p in pos_a}) == 5  # sequences differ from each other


def test_shapes_and_dtypes() -> None:
    frames, positions = simulate_bouncing_ball(2, 7, seed=0)
    assert frames.shape == (2, 7, 32, 32, 1) and frames.dtype == np.uint8
    assert positions.shape == (2, 7, 2) and positions.dtype == np.float32


def test_ball_stays_inside_polygon(balls) -> None:
    _, positions = balls
    polygon = np.array(POLYGON_32, dtype=np.float64)
    for point in positions.reshape(-1, 2).astype(np.float64):
        assert _inside(point, polygon)
        assert _edge_distance(point, polygon) >= 3.0 - 0.15
    start = positions[:, 0]
    assert np.all(np.abs(start - 16.0) <= 2.0)


def test_speed_constant_between_bounces(balls) -> None:
    _, positions = balls
    step = np.diff(positions.astype(np.float64), axis=1)  # (n, T-1, 2)
    speed = np.linalg.norm(step, axis=-1) / DT  # (n, T-1)
    unit = step / np.linalg.norm(step, axis=-1, keepdims=True)
    cos = np.sum(unit[:, 1:] * unit[:, :-1], axis=-1)  # (n, T-2)
    # a step is bounce-free when it points the same way as both of its neighbours
    free = (cos[:, 1:] > 1 - 1e-6) & (cos[:, :-1] > 1 - 1e-6)  # steps 1 .. T-3
    assert np.all(cos[:, 0] > 1 - 1e-6), "the ball starts too far from the walls to bounce"
    initial = speed[:, 0]  # (n,)
    assert np.all((initial >= 10.0) & (initial <= 15.0))
    for i in range(len(positions)):
        free_speed = speed[i, 1:-1][free[i]]
        assert free_speed.size > 30
        np.testing.assert_allclose(free_speed, initial[i], rtol=1e-4)
    # a bounce only shortens the chord between frames, never lengthens it
    assert np.all(speed <= initial[:, None] * (1 + 1e-4))
    assert np.sum(~free) > 20  # the check above did see bounces


def test_frames_are_discs_at_the_positions(balls) -> None:
    frames, positions = balls
    assert set(np.unique(frames).tolist()) == {0, 255}
    lit = frames[..., 0] > 0  # (n, T, H, W)
    count = lit.sum(axis=(2, 3))
    assert count.min() >= 20 and count.max() <= 40  # pi * 3^2 = 28.3
    centres = np.arange(32) + 0.5
    cx = (lit * centres[None, None, None, :]).sum(axis=(2, 3)) / count
    cy = (lit * centres[None, None, :, None]).sum(axis=(2, 3)) / count
    assert np.abs(cx - positions[..., 0]).max() < 0.5
    assert np.abs(cy - positions[..., 1]).max() < 0.5


def test_size_64_scales_polygon_and_radius() -> None:
    frames, positions = simulate_bouncing_ball(3, 40, size=64, seed=2)
    assert frames.shape == (3, 40, 64, 64, 1)
    count = (frames > 0).sum(axis=(2, 3, 4))
    assert np.all(np.abs(count - math.pi * 36) < 15)
    polygon = np.array(POLYGON_32, dtype=np.float64) * 2
    for point in positions.reshape(-1, 2).astype(np.float64):
        assert _edge_distance(point, polygon) >= 6.0 - 0.3 and _inside(point, polygon)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"n": 0}, "at least 1 sequence"),
        ({"length": 0}, "at least 1 sequence"),
        ({"size": 4}, "size must be at least 8"),
        ({"radius": 20.0}, "radius must be in"),
        ({"speed_range": (5.0, 1.0)}, "speed_range"),
        ({"dt": 0.0}, "dt must be positive"),
        ({"seed": -1}, "seed must be a non-negative integer"),
    ],
)
def test_simulate_rejects_bad_arguments(kwargs: dict, fragment: str) -> None:
    args = {"n": 1, "length": 2, **kwargs}
    with pytest.raises(DataError, match=fragment):
        simulate_bouncing_ball(args.pop("n"), args.pop("length"), **args)


def test_make_bouncing_ball_dataset_streams_blocks(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(bouncing_ball, "_BLOCK", 2)  # 5 sequences -> 3 blocks
    out = make_bouncing_ball_dataset(tmp_path / "bb", n=5, length=6, seed=7)
    frames, positions = simulate_bouncing_ball(5, 6, seed=7)
    ds = SequenceDataset(out)
    np.testing.assert_array_equal(ds.frames, frames)
    np.testing.assert_array_equal(ds.labels["positions"], positions)
    assert ds.meta["name"] == "bouncing-ball" and ds.meta["seed"] == 7
    assert ds.meta["frames_shape"] == [5, 6, 32, 32, 1] and ds.meta["frames_dtype"] == "uint8"
    assert ds.meta["created_by"].startswith("dsvae ")
    assert ds.meta["simulation"]["radius"] == 3.0
    assert ds.frame_shape == (1, 32, 32) and ds.is_image and ds.length == 6
    with pytest.raises(DataError, match="pass --overwrite"):
        make_bouncing_ball_dataset(out, n=1, length=2)


# ---------------------------------------------------------------- format round trip


def _images(n: int = 4, t: int = 3, c: int = 3) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(n, t, 8, 6, c), dtype=np.uint8)  # (N, T, H, W, C)


def test_round_trip_images(tmp_path) -> None:
    frames = _images()
    labels = {"ids": np.arange(4), "pos": np.ones((4, 3, 2), np.float32)}
    out = write_dataset(tmp_path / "set", frames, labels, META)
    ds = SequenceDataset(out)
    assert isinstance(ds.frames, np.memmap)
    np.testing.assert_array_equal(ds.frames, frames)
    np.testing.assert_array_equal(ds.labels["pos"], labels["pos"])
    assert (len(ds), ds.num_sequences, ds.length) == (4, 4, 3)
    assert ds.frame_shape == (3, 8, 6) and ds.is_image
    item = ds[2]
    assert item.dtype == torch.uint8 and item.shape == (3, 8, 6, 3)
    np.testing.assert_array_equal(item.numpy(), frames[2])
    item.zero_()  # a copy: the data set is unchanged
    np.testing.assert_array_equal(ds.frames[2], frames[2])
    loader = torch.utils.data.DataLoader(ds, batch_size=3, shuffle=False)
    batch = prepare_frames(next(iter(loader)))
    assert batch.shape == (3, 3, 3, 8, 6)  # (B, T, C, H, W)
    torch.testing.assert_close(batch[1, 0, 2], torch.from_numpy(frames[1, 0, :, :, 2]) / 255)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["frames_shape"] == [4, 3, 8, 6, 3] and meta["name"] == "toy"
    assert [p.name for p in tmp_path.iterdir()] == ["set"]  # no temp folder left


def test_round_trip_vectors_and_pickling(tmp_path) -> None:
    frames = np.random.default_rng(1).normal(size=(5, 4, 7)).astype(np.float32)
    ds = SequenceDataset(write_dataset(tmp_path / "vec", frames, {}, META))
    assert not ds.is_image and ds.frame_shape == (7,) and ds.labels == {}
    assert ds[1].dtype == torch.float32
    np.testing.assert_array_equal(ds[1].numpy(), frames[1])
    clone = pickle.loads(pickle.dumps(ds))
    assert isinstance(clone.frames, np.memmap)
    np.testing.assert_array_equal(clone.frames, frames)


def test_prepare_frames_and_to_uint8_images() -> None:
    raw = torch.from_numpy(_images(n=2, t=3, c=3))  # (B, T, H, W, C)
    x = prepare_frames(raw)
    assert x.dtype == torch.float32 and x.shape == (2, 3, 3, 8, 6)
    assert x.is_contiguous()
    assert torch.allclose(x[1, 2, 0], raw[1, 2, :, :, 0].float() / 255)
    assert x.min() >= 0.0 and x.max() <= 1.0
    np.testing.assert_array_equal(to_uint8_images(x), raw.numpy())
    clipped = to_uint8_images(np.array([-0.5, 0.5, 1.5], np.float32).reshape(1, 1, 3))
    assert clipped.tolist() == [[[0], [128], [255]]]  # (H=1, W=3, C=1)
    vectors = torch.ones(2, 3, 5, dtype=torch.float64)
    assert prepare_frames(vectors).dtype == torch.float32
    with pytest.raises(DataError, match="uint8 \\(B, T, H, W, C\\)"):
        prepare_frames(torch.zeros(2, 3, 4, dtype=torch.int64))


def test_streaming_writer(tmp_path) -> None:
    frames = _images(n=5, c=1)
    with DatasetWriter(tmp_path / "s", 5, frames.shape[1:], np.uint8) as writer:
        assert writer.tmp_dir.parent == tmp_path and writer.tmp_dir.name.startswith(".s.tmp-")
        writer.write(3, frames[3:])
        writer.write(0, frames[:3])
        with pytest.raises(DataError, match="outside 0..4"):
            writer.write(4, frames[:2])
        with pytest.raises(DataError, match="dtype"):
            writer.write(0, frames[:1].astype(np.float32))
        writer.finish({}, META)
    np.testing.assert_array_equal(SequenceDataset(tmp_path / "s").frames, frames)
    with (
        pytest.raises(DataError, match="never written"),
        DatasetWriter(tmp_path / "t", 2, (1, 8, 8, 1)) as w,
    ):
        w.finish({}, META)
    with (
        pytest.raises(DataError, match="without finish"),
        DatasetWriter(tmp_path / "u", 2, (1, 8, 8, 1)),
    ):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


# ---------------------------------------------------------------- atomicity


def test_existing_folder_is_kept_without_overwrite(tmp_path) -> None:
    out = write_dataset(tmp_path / "set", _images(), {}, META)
    before = (out / "frames.npy").read_bytes()
    with pytest.raises(DataError, match="exists; pass --overwrite or choose another folder"):
        write_dataset(out, _images(n=2), {}, META)
    assert (out / "frames.npy").read_bytes() == before
    write_dataset(out, _images(n=2), {}, META, overwrite=True)
    assert SequenceDataset(out).num_sequences == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_overwrite_refuses_a_folder_that_is_not_a_data_set(tmp_path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not a dsvae data set"):
        write_dataset(tmp_path / "home", _images(), {}, META, overwrite=True)
    assert (tmp_path / "home" / "notes.txt").read_text() == "keep me"


def test_failed_write_leaves_nothing_behind(tmp_path) -> None:
    with pytest.raises(DataError, match="first dim must be the number of sequences N=4"):
        write_dataset(tmp_path / "bad", _images(), {"pos": np.zeros(3)}, META)
    with pytest.raises(DataError, match="lacks"):
        write_dataset(tmp_path / "bad", _images(), {}, {"name": "x"})
    with DatasetWriter(tmp_path / "bad", 4, (3, 8, 6, 3)) as writer:
        writer.write(0, _images())
        with pytest.raises(DataError, match="first dim"):
            writer.finish({"pos": np.zeros(3)}, META)
    assert list(tmp_path.iterdir()) == []


def test_crash_during_overwrite_keeps_old_folder(tmp_path, monkeypatch) -> None:
    out = write_dataset(tmp_path / "set", _images(), {}, META)

    def crash(path, obj) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(dataset, "atomic_write_json", crash)
    with pytest.raises(OSError, match="disk full"):
        write_dataset(out, _images(n=2), {}, META, overwrite=True)
    assert SequenceDataset(out).num_sequences == 4
    assert [p.name for p in tmp_path.iterdir()] == ["set"]


# ---------------------------------------------------------------- validation on open


def _npy(tmp_path, array: np.ndarray, **kwargs) -> None:
    (tmp_path / "d").mkdir(exist_ok=True)
    np.save(tmp_path / "d" / "frames.npy", array, **kwargs)


@pytest.mark.parametrize(
    ("array", "fragment"),
    [
        (np.zeros((2, 3, 4), np.int64), "dtype int64; accepted are uint8 images"),
        (np.zeros((2, 3, 8, 8, 4), np.uint8), "1 (grey) or 3 (RGB) channels, got C=4"),
        (np.zeros((2, 3, 8), np.uint8), "uint8 frames must have 5 dims"),
        (np.zeros((2, 3, 8, 8, 1), np.float32), "images must be stored as uint8"),
        (np.zeros((0, 3, 8, 8, 1), np.uint8), "every dim must be at least 1"),
        (np.zeros((2, 0, 5), np.float32), "every dim must be at least 1"),
    ],
)
def test_open_rejects_bad_frames(tmp_path, array: np.ndarray, fragment: str) -> None:
    _npy(tmp_path, array)
    with pytest.raises(DataError, match=fragment.replace("(", "\\(").replace(")", "\\)")):
        SequenceDataset(tmp_path / "d")


def test_open_rejects_unreadable_frames(tmp_path) -> None:
    _npy(tmp_path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="no pickled objects"):
        SequenceDataset(tmp_path / "d")
    _npy(tmp_path, np.zeros((4, 3, 8, 8, 1), np.uint8))
    file = tmp_path / "d" / "frames.npy"
    file.write_bytes(file.read_bytes()[:300])  # truncated
    with pytest.raises(DataError, match="could not read"):
        SequenceDataset(tmp_path / "d")
    file.write_bytes(b"")
    with pytest.raises(DataError, match="could not read"):
        SequenceDataset(tmp_path / "d")


def test_open_rejects_missing_or_wrong_paths(tmp_path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        SequenceDataset(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is not a folder"):
        SequenceDataset(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no frames.npy; build one with `dsvae data bouncing-ball"):
        SequenceDataset(tmp_path / "empty")


def test_open_rejects_bad_labels_and_meta(tmp_path) -> None:
    out = write_dataset(tmp_path / "set", _images(), {}, META)
    np.savez(out / "labels.npz", pos=np.zeros((3, 2)))
    with pytest.raises(DataError, match="label 'pos' has shape \\(3, 2\\)"):
        SequenceDataset(out)
    (out / "labels.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="could not read"):
        SequenceDataset(out)
    (out / "labels.npz").unlink()
    (out / "meta.json").write_text("{not json")
    with pytest.raises(DataError, match="is not valid JSON"):
        SequenceDataset(out)
    (out / "meta.json").write_text(json.dumps({"frames_shape": [9, 3, 8, 6, 3]}))
    with pytest.raises(DataError, match="inconsistent"):
        SequenceDataset(out)


# ---------------------------------------------------------------- splits


def test_split_indices() -> None:
    train, val = split_indices(50, 0.2, seed=3)
    again = split_indices(50, 0.2, seed=3)
    np.testing.assert_array_equal(train, again[0])
    np.testing.assert_array_equal(val, again[1])
    assert len(val) == 10 and len(np.intersect1d(train, val)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(50))
    assert not np.array_equal(val, split_indices(50, 0.2, seed=4)[1])
    assert len(split_indices(2, 0.01, seed=0)[1]) == 1
    assert len(split_indices(5, 0.0, seed=0)[1]) == 0
    with pytest.raises(DataError, match="cannot split 1"):
        split_indices(1, 0.5, seed=0)
    with pytest.raises(DataError, match="val_fraction must be in"):
        split_indices(10, 1.0, seed=0)
