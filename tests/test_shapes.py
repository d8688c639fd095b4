"""Bouncing shapes (static factors per sequence) and their judge-free measurement."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Independent, Normal

from dsvae.cli import main
from dsvae.data import POLYGON_32, SequenceDataset, make_bouncing_ball_dataset
from dsvae.data.bouncing_ball import simulate_bouncing_ball, simulate_bouncing_shapes
from dsvae.data.shapes import SHAPES, StaticFactors, parse_list, render
from dsvae.errors import DataError
from dsvae.eval.shapes import (
    centre_error,
    content_kept,
    differing_pairs,
    markdown_table,
    measure_shapes,
    read_frames,
    read_sequences,
)

ALL = StaticFactors(("ball", "square", "triangle", "diamond"), (3.0, 4.5), (255, 140))


# ----------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("name", list(SHAPES))
def test_every_shape_has_the_area_of_its_disc_and_its_centroid_at_the_centre(name):
    shape = SHAPES[name]
    frame = render(shape, 40.0, 255, np.array([[128.3, 127.6]]), 256)[0, ..., 0] > 0
    rows, cols = np.nonzero(frame)
    assert abs(frame.sum() / (math.pi * 40.0**2) - 1) < 0.01
    assert abs(cols.mean() + 0.5 - 128.3) <= 0.5 and abs(rows.mean() + 0.5 - 127.6) <= 0.5
    half = (cols.max() - cols.min() + 1) / 2
    assert shape.inner * 40 - 1 <= half <= shape.bound * 40 + 1


def test_triangle_points_up_and_square_is_axis_aligned():
    tri = render(SHAPES["triangle"], 10.0, 255, np.array([[32.0, 32.0]]), 64)[0, ..., 0] > 0
    widths = tri.sum(axis=1)[tri.any(axis=1)]
    assert widths[0] < widths[-1]  # narrow at the top (row 0 is the top)
    square = render(SHAPES["square"], 10.0, 255, np.array([[32.0, 32.0]]), 64)[0, ..., 0] > 0
    widths = square.sum(axis=1)[square.any(axis=1)]
    assert len(set(widths.tolist())) == 1


# ----------------------------------------------------------------------------- factors


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"shapes": ("ball", "star")}, "unknown shape 'star'; choose from ball"),
        ({"shapes": ()}, "at least one value for shapes"),
        ({"sizes": (3.0, 3.0)}, "sizes repeats a value"),
        ({"sizes": (-1.0,)}, "sizes must be positive"),
        ({"sizes": (float("nan"),)}, "sizes must be positive"),
        ({"greys": (0,)}, "grey levels must be in 1..255"),
        ({"greys": (256,)}, "grey levels must be in 1..255"),
    ],
)
def test_factors_refuse_bad_values(kwargs, fragment):
    with pytest.raises(DataError, match=fragment):
        StaticFactors(**kwargs)


def test_a_shape_too_large_for_the_walls_is_refused_before_simulating():
    with pytest.raises(DataError, match="use sizes below 5.82 for a triangle"):
        simulate_bouncing_shapes(1, 2, StaticFactors(("triangle",), (6.0,)))


def test_parse_list_names_the_option():
    assert parse_list(" 3, 4.5 ,", float, "--sizes") == (3.0, 4.5)
    with pytest.raises(DataError, match="--sizes"):
        parse_list("3,big", float, "--sizes")
    with pytest.raises(DataError, match="--shapes needs at least one value"):
        parse_list(" , ", str, "--shapes")


# ----------------------------------------------------------------------------- simulation


@pytest.fixture(scope="module")
def shapes_data():
    return simulate_bouncing_shapes(60, 40, ALL, seed=4)


def test_factor_draws_leave_the_paper_trajectories_alone():
    """Drawing content from its own stream: the same seed gives the paper's ball paths."""
    _, paper = simulate_bouncing_ball(6, 12, seed=2)
    _, same, content = simulate_bouncing_shapes(6, 12, StaticFactors(greys=(255, 90)), seed=2)
    np.testing.assert_array_equal(paper, same)
    assert set(content[:, 2]) == {0, 1}  # both grey levels were drawn
    frames_a, pos_a, c_a = simulate_bouncing_shapes(5, 6, ALL, seed=9)
    frames_b, pos_b, c_b = simulate_bouncing_shapes(5, 6, ALL, seed=9)
    np.testing.assert_array_equal(frames_a, frames_b)
    np.testing.assert_array_equal(c_a, c_b)


def test_shapes_are_drawn_with_their_content_at_their_positions(shapes_data):
    frames, positions, content = shapes_data
    assert frames.shape == (60, 40, 32, 32, 1)
    for k, n in enumerate((4, 2, 2)):
        assert set(content[:, k].tolist()) == set(range(n))
    for i in range(len(frames)):
        grey = ALL.greys[content[i, 2]]
        assert set(np.unique(frames[i]).tolist()) == {0, grey}
    lit = frames[..., 0] > 0
    grid = np.arange(32) + 0.5
    count = lit.sum(axis=(2, 3))
    cx = (lit * grid[None, None, None, :]).sum(axis=(2, 3)) / count
    cy = (lit * grid[None, None, :, None]).sum(axis=(2, 3)) / count
    assert np.abs(cx - positions[..., 0]).max() < 0.6
    assert np.abs(cy - positions[..., 1]).max() < 0.6


def test_shapes_never_leave_the_polygon(shapes_data):
    frames, _, _ = shapes_data
    polygon = np.array(POLYGON_32, dtype=np.float64)
    rows, cols = np.nonzero(frames[..., 0].any(axis=(0, 1)))
    for x, y in zip(cols + 0.5, rows + 0.5, strict=True):
        a, b = polygon, np.roll(polygon, -1, axis=0)
        cross = (b[:, 0] - a[:, 0]) * (y - a[:, 1]) - (b[:, 1] - a[:, 1]) * (x - a[:, 0])
        assert np.all(cross >= -0.3 * np.linalg.norm(b - a, axis=1)) or np.all(
            cross <= 0.3 * np.linalg.norm(b - a, axis=1)
        )


def test_bouncing_shapes_data_set_labels_and_meta(tmp_path):
    out = make_bouncing_ball_dataset(tmp_path / "s", n=8, length=4, size=64, seed=1, factors=ALL)
    ds = SequenceDataset(out)
    assert ds.meta["name"] == "bouncing-shapes"
    assert ds.meta["factors"]["shapes"] == list(ALL.shapes)
    assert ds.meta["factors"]["sizes_px"] == [6.0, 9.0]
    _, _, content = simulate_bouncing_shapes(8, 4, ALL, size=64, seed=1)
    np.testing.assert_array_equal(ds.labels["shape"], content[:, 0])
    np.testing.assert_allclose(ds.labels["size"], np.array([6.0, 9.0])[content[:, 1]])
    np.testing.assert_array_equal(ds.labels["grey"], np.array([255, 140])[content[:, 2]])
    paper = SequenceDataset(make_bouncing_ball_dataset(tmp_path / "p", n=3, length=4))
    assert set(paper.labels) == {"positions"} and "factors" not in paper.meta


def test_cli_bad_factors_exit_2_and_write_nothing(tmp_path, capsys):
    for args, fragment in [
        (["--shapes", "ball,hexagon"], "unknown shape 'hexagon'"),
        (["--sizes", "3,0"], "sizes must be positive"),
        (["--shapes", "triangle", "--sizes", "7"], "use sizes below"),
        (["--greys", "grey"], "--greys"),
    ]:
        code = main(["data", "bouncing-ball", "--out", str(tmp_path / "d"), "--n", "4", *args])
        assert code == 2 and fragment in capsys.readouterr().err
        assert not (tmp_path / "d").exists()
    code = main(["data", "bouncing-ball", "--out", str(tmp_path / "d"), "--n", "4",
                 "--length", "3", "--shapes", "ball,square", "--sizes", "3,4"])  # fmt: skip
    assert code == 0 and "(ball, square)" in capsys.readouterr().out
    assert set(SequenceDataset(tmp_path / "d").labels) == {"positions", "shape", "size", "grey"}


# ----------------------------------------------------------------------------- reading


def test_reading_the_true_frames_is_exact(shapes_data):
    frames, positions, content = shapes_data
    read = read_sequences(frames[..., 0] / 255.0, ALL, 1.0)
    assert content_kept(read, content) == {"shape": 1.0, "size": 1.0, "grey": 1.0, "all": 1.0}
    assert centre_error(read.centre, positions) < 0.35
    assert read.constant.mean() > 0.99


def test_an_empty_frame_reads_as_nothing():
    read = read_frames(np.zeros((2, 32, 32)), ALL, 1.0)
    assert read.shape.tolist() == [-1, -1] and read.grey.tolist() == [-1, -1]


def test_differing_pairs_pick_other_shapes():
    a, b = differing_pairs(np.array([0, 0, 1, 2, 0]), 10)
    assert len(a) == 5 and np.all(np.array([0, 0, 1, 2, 0])[a] != np.array([0, 0, 1, 2, 0])[b])
    with pytest.raises(DataError, match="one shape only"):
        differing_pairs(np.array([1, 1, 1]), 2)


# ----------------------------------------------------------------------------- measuring


class _Oracle(nn.Module):
    """A hand-made model with the DSVAE interface: f is the content one-hot, z_t the centre.

    ``broken=True`` decodes a random content at a random place in every frame, ignoring
    f and z.
    """

    def __init__(self, factors: StaticFactors, broken: bool = False):
        super().__init__()
        self.factors, self.broken = factors, broken
        self.dummy = nn.Parameter(torch.zeros(1))
        self.sizes = (len(factors.shapes), len(factors.sizes), len(factors.greys))

    def encode_features(self, x):
        return x

    def posterior_f(self, features):
        read = read_sequences(features[:, :, 0].numpy(), self.factors, 1.0)
        parts = [np.eye(n)[np.clip(v, 0, None)] for n, v in
                 zip(self.sizes, (read.shape, read.size, read.grey), strict=True)]  # fmt: skip
        f = torch.tensor(np.concatenate(parts, axis=1), dtype=torch.float32)
        return Independent(Normal(f, 1e-3), 1)

    def posterior_z(self, features, f, mask=None):
        read = read_sequences(features[:, :, 0].numpy(), self.factors, 1.0)
        return Independent(Normal(torch.tensor(read.centre, dtype=torch.float32), 1e-3), 1)

    def sample_f(self, n, generator=None):
        idx = [torch.randint(k, (n,), generator=generator) for k in self.sizes]
        return torch.cat([nn.functional.one_hot(i, k).float()
                          for i, k in zip(idx, self.sizes, strict=True)], dim=1)  # fmt: skip

    def sample_z(self, n, length, generator=None):
        start = 16 + 4 * (torch.rand(n, 1, 2, generator=generator) - 0.5)
        return start.expand(n, length, 2).clone()

    def decode(self, z, f, length=None):
        s, r, _ = self.sizes
        b, t = z.shape[:2]
        if self.broken:  # every frame its own random content and place
            return self._decode(10 + 12 * torch.rand(b * t, 1, 2), self.sample_f(b * t), b, t)
        return self._decode(z, f, b, t)

    def _decode(self, z, f, b, t):
        s, r, _ = self.sizes
        shape, size, grey = f[:, :s].argmax(1), f[:, s : s + r].argmax(1), f[:, s + r :].argmax(1)
        out = np.stack([
            render(self.factors.bodies[shape[i]], self.factors.sizes[size[i]],
                   self.factors.greys[grey[i]], z[i].numpy(), 32)
            for i in range(len(z))
        ])  # fmt: skip
        frames = torch.tensor(out, dtype=torch.float32).reshape(b, t, 32, 32, 1)
        frames = frames.permute(0, 1, 4, 2, 3) / 255.0
        return Independent(Normal(frames, 1.0), 3)


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    return SequenceDataset(make_bouncing_ball_dataset(root / "t", n=40, length=6, seed=3,
                                                      factors=ALL))  # fmt: skip


def test_a_perfect_model_scores_perfectly(held_out):
    scores = measure_shapes(_Oracle(ALL), held_out, pairs=20, samples=3)
    assert scores["pairs"] == 20
    assert scores["swap"]["content_kept"]["all"] == 1.0
    assert scores["swap"]["shape_of_z_donor"] == 0.0  # pairs of different shapes
    assert scores["swap"]["centre_error_px"] < 0.35
    assert scores["swap"]["centre_error_to_f_donor_px"] > 2.0
    assert scores["fixed_f"]["content_kept"]["all"] == 1.0
    assert scores["fixed_f"]["shape_constant_over_time"] == 1.0
    assert scores["fixed_z"]["centre_error_px"] < 0.35
    assert scores["fixed_z"]["shapes_differ"] > 0.4
    assert scores["reconstruction"]["content_kept"]["shape"] == 1.0
    assert "| swap: shape kept from the f donor | 100.0% |" in markdown_table(scores)


def test_a_broken_model_scores_chance(held_out):
    scores = measure_shapes(_Oracle(ALL, broken=True), held_out, pairs=20, samples=3)
    assert scores["swap"]["content_kept"]["shape"] < 0.6  # 1 / 4 expected
    assert scores["swap"]["content_kept"]["all"] < 0.3  # 1 / 16 expected
    assert scores["swap"]["centre_error_px"] > 2.5
    assert scores["fixed_f"]["shape_constant_over_time"] < 0.8


def test_measuring_needs_shape_labels(tmp_path):
    paper = SequenceDataset(make_bouncing_ball_dataset(tmp_path / "p", n=3, length=4))
    with pytest.raises(DataError, match="no shape labels"):
        measure_shapes(_Oracle(ALL), paper)


def test_quickstart_tiny_measures_and_writes_summary(tmp_path, capsys):
    tiny = ["train.batch_size=16", "train.progress_bar=false", "model.frames.channels=[4,4,4]",
            "model.frames.feature_dim=8", "model.hidden_dim=8"]  # fmt: skip
    code = main(["quickstart", "--out", str(tmp_path / "qs"), "--n", "48", "--length", "5",
                 "--steps", "4", *(a for kv in tiny for a in ("--set", kv))])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "| swap: shape kept from the f donor |" in out
    summary = json.loads((tmp_path / "qs" / "summary.json").read_text())
    assert summary["train_steps"] == 4 and summary["factors"]["shapes"] == [
        "ball", "triangle", "bar"]  # fmt: skip
    d = summary["disentanglement"]
    assert 0.0 <= d["swap"]["content_kept"]["shape"] <= 1.0 and d["pairs"] > 0
    assert math.isfinite(summary["elbo_before"]) and math.isfinite(summary["elbo_after"])
    assert (tmp_path / "qs" / "pictures" / "overview.png").stat().st_size > 10_000
