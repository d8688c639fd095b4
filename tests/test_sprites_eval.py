"""Sprites protocols (Table 1, later work) and Figures 3-4, with a stand-in judge."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from dsvae.data import SequenceDataset, write_dataset
from dsvae.eval import sprites
from dsvae.eval.figures import figure3, plot_trajectories, trajectories
from tiny import tiny_model

ATTRS = sprites.ATTRIBUTES


class ConstantJudge:
    """Returns the same probabilities for every frame, whatever it is shown."""

    def __init__(self, attribute: list[float], action: list[float]) -> None:
        self.attribute, self.action = torch.tensor(attribute), torch.tensor(action)

    def predict_proba(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        b, t = x.shape[:2]
        out = {name: self.attribute.expand(b, t, -1) for name in ATTRS}
        out["action"] = self.action.expand(b, -1)
        return out


class BrightnessJudge:
    """Class = brightness bin of each frame (attributes) and of the sequence (action)."""

    def predict_proba(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        frame = x.mean(dim=(2, 3, 4))  # (B, T)
        out = {name: _one_hot_bins(frame, 6) for name in ATTRS}
        out["action"] = _one_hot_bins(frame.mean(1), 9)
        return out


def _one_hot_bins(v: torch.Tensor, k: int) -> torch.Tensor:
    cls = (v.clamp(0, 0.999) * k).long()
    return 0.9 * torch.nn.functional.one_hot(cls, k).float() + 0.1 / k


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    rng = np.random.default_rng(0)
    n, t = 12, 4
    frames = rng.integers(0, 256, size=(n, t, 16, 16, 3), dtype=np.uint8)
    labels = {
        "attributes": rng.integers(0, 6, size=(n, 4)),
        "action": np.arange(n) % 9,
        "character": np.arange(n),
    }
    meta = {"name": "tiny-sprites", "source": "test", "seed": 0, "licence": "generated"}
    path = write_dataset(tmp_path_factory.mktemp("sprites") / "test", frames, labels, meta)
    return SequenceDataset(path)


@pytest.fixture(scope="module")
def model():
    return tiny_model("model.frame_shape=[3,16,16]").eval()


def test_constant_judge_gives_known_table1(model, split):
    attr = [0.5, 0.1, 0.1, 0.1, 0.1, 0.1]
    rows = sprites.table1(model, ConstantJudge(attr, [1 / 9] * 9), split, batch_size=5)
    assert set(rows) == {*ATTRS, "action", "motion", "direction"}
    kl_uniform = sum(math.log((1 / 6) / p) / 6 for p in attr)  # KL[uniform || p_data]
    for name in ATTRS:
        assert rows[name]["disagreement"] == 0.0
        assert rows[name]["kl_recon"] == pytest.approx(0.0, abs=1e-6)
        assert rows[name]["kl_random"] == pytest.approx(kl_uniform, rel=1e-5)
    for name in ("action", "motion", "direction"):
        assert rows[name]["disagreement"] == 0.0
        assert rows[name]["kl_random"] == pytest.approx(0.0, abs=1e-6)


def test_action_parts_marginalise_the_nine_classes():
    p = torch.zeros(2, 9)
    p[0, 5] = 1.0  # spellcast-right
    p[1] = torch.arange(9.0) / 36.0
    parts = sprites.action_parts(p)
    assert parts["motion"][0].tolist() == [0.0, 1.0, 0.0]
    assert parts["direction"][0].tolist() == [0.0, 0.0, 1.0]
    assert parts["motion"][1].tolist() == pytest.approx([3 / 36, 12 / 36, 21 / 36])
    assert parts["direction"][1].tolist() == pytest.approx([9 / 36, 12 / 36, 15 / 36])


def test_constant_judge_gives_known_later_work(model, split):
    action = [0.0] * 9
    action[2] = 1.0
    result = sprites.later_work(model, ConstantJudge([1 / 6] * 6, action), split, batch_size=5)
    assert result["action_acc"] == pytest.approx(np.mean(split.labels["action"] == 2))
    assert result["inception_score"] == pytest.approx(1.0)
    assert result["h_y_given_x"] == pytest.approx(0.0, abs=1e-6)
    assert result["h_y"] == pytest.approx(0.0, abs=1e-6)
    labels = split.labels["action"]
    assert result["motion_acc"] == pytest.approx(np.mean(labels // 3 == 0))  # class 2: walk
    assert result["direction_acc"] == pytest.approx(np.mean(labels % 3 == 2))  # ... right
    for name in ATTRS:
        assert 0.0 <= result[f"{name}_acc"] <= 1.0


def test_protocols_are_reproducible_and_in_range(model, split):
    a = sprites.table1(model, BrightnessJudge(), split, seed=3, batch_size=7)
    b = sprites.table1(model, BrightnessJudge(), split, seed=3, batch_size=7)
    assert a == b
    for row in a.values():
        assert 0.0 <= row["disagreement"] <= 1.0 and row["kl_recon"] >= 0.0


def _brightness_bins(split, k: int, over_time: bool = False) -> torch.Tensor:
    x = torch.stack([split[i] for i in range(len(split))]).float() / 255  # (N, T, H, W, C)
    v = x.mean(dim=(2, 3, 4))
    return ((v.mean(1) if over_time else v).clamp(0, 0.999) * k).long()


def test_inferred_factors_on_known_answers(model, split, monkeypatch, tmp_path):
    rows = sprites.inferred_factors(model, ConstantJudge([0.5] + [0.1] * 5, [1 / 9] * 9), split)
    zeros = {name: 0.0 for name in (*ATTRS, "action", "motion", "direction")}
    assert rows == {"reconstruction": zeros, "swap": zeros}
    # sequences of different overall brightness, so that the stand-in action differs
    rng = np.random.default_rng(1)
    scale = np.linspace(0.1, 1.0, len(split))[:, None, None, None, None]
    frames = np.asarray(split.frames) * scale * rng.uniform(0.5, 1.0, (len(split), 4, 1, 1, 1))
    meta = {"name": "tiny-sprites", "source": "test", "seed": 1, "licence": "generated"}
    split = SequenceDataset(
        write_dataset(tmp_path / "test", frames.astype(np.uint8), dict(split.labels), meta)
    )
    n = len(split)
    donors = (np.arange(n) + n // 2) % n
    frame_bins, action_bins = _brightness_bins(split, 6), _brightness_bins(split, 9, True)
    # a stand-in autoencoder that plays every sequence backwards: the per-sequence action
    # (mean brightness) is kept, each frame's brightness bin is compared with its mirror's
    monkeypatch.setattr(sprites.ops, "reconstruct", lambda m, x: x.flip(1))
    # a stand-in swap whose output is the recipient itself: attributes kept, action lost
    monkeypatch.setattr(sprites.ops, "swap", lambda m, a, b: (a, b))
    rows = sprites.inferred_factors(model, BrightnessJudge(), split, batch_size=5)
    flipped = (frame_bins != frame_bins.flip(1)).float().mean().item()
    other_action = (action_bins != action_bins[donors]).float().mean().item()
    assert 0.0 < flipped < 1.0 and other_action > 0.0
    for name in ATTRS:
        assert rows["reconstruction"][name] == pytest.approx(flipped)
        assert rows["swap"][name] == 0.0
    assert rows["reconstruction"]["action"] == 0.0
    assert rows["swap"]["action"] == pytest.approx(other_action)
    other_motion = (action_bins // 3 != action_bins[donors] // 3).float().mean().item()
    assert rows["swap"]["motion"] == pytest.approx(other_motion)
    assert rows["reconstruction"]["motion"] == rows["reconstruction"]["direction"] == 0.0
    # and one whose output is the donor: the action follows it, the attributes do not
    monkeypatch.setattr(sprites.ops, "swap", lambda m, a, b: (b, a))
    rows = sprites.inferred_factors(model, BrightnessJudge(), split, batch_size=5)
    other_frames = (frame_bins != frame_bins[donors]).float().mean().item()
    assert other_frames > 0.0
    assert rows["swap"]["skin"] == pytest.approx(other_frames) and rows["swap"]["action"] == 0.0


def test_inferred_factors_do_not_depend_on_the_batch_size(model, split):
    a = sprites.inferred_factors(model, BrightnessJudge(), split, batch_size=5)
    b = sprites.inferred_factors(model, BrightnessJudge(), split, batch_size=12)
    for kind in ("reconstruction", "swap"):
        assert a[kind] == pytest.approx(b[kind])
    assert all(0.0 <= v <= 1.0 for kind in a.values() for v in kind.values())


def test_markdown_puts_the_paper_beside_ours(model, split):
    rows = sprites.table1(model, BrightnessJudge(), split)
    text = sprites.table1_markdown(rows)
    assert "| skin |" in text and "3.98%" in text and "8.11%" in text
    later = sprites.later_work(model, BrightnessJudge(), split)
    assert "90.73%" in sprites.later_work_markdown(later)
    assert "| action: motion |" in text and "| action: direction |" in text
    diag = {"reconstruction": {name: 0.25 for name in rows}, "swap": {name: 0.5 for name in rows}}
    text = sprites.inferred_factors_markdown(diag, rows)
    assert text.count("25.00%") == 7 and text.count("50.00%") == 7
    assert "| action: motion |" in text and "| action: direction |" in text
    assert f"{100 * rows['skin']['disagreement']:.2f}%" in text


def test_figure3_writes_eight_panels(model, split, tmp_path):
    x = torch.stack([split[i] for i in range(4)]).permute(0, 1, 4, 2, 3).float() / 255
    paths = figure3(model, x, tmp_path, seed=0)
    assert sorted(p.name for p in paths if p.suffix == ".png") == [
        f"figure3_{k}.png" for k in "abcdefgh"
    ]
    assert all(p.stat().st_size > 0 for p in paths)


def test_trajectories_share_the_fixed_factor(model, tmp_path):
    classes = trajectories(model, BrightnessJudge(), share="f", length=4, n=10, repeats=3, seed=0)
    assert classes["skin"].shape == (3, 10, 4) and classes["action"].shape == (3, 10, 4)
    assert (classes["action"] == classes["action"][..., :1]).all()  # one action per sequence
    path = plot_trajectories(classes, tmp_path / "fig4.png", title="shared f")
    assert path.stat().st_size > 1000
    with pytest.raises(ValueError, match="share"):
        trajectories(model, BrightnessJudge(), share="x", length=4)


def test_resolve_test_split_requires_sprites_labels(tmp_path, split):
    assert sprites.resolve_test_split(split.path.parent).path == split.path
    frames = np.zeros((2, 3, 16, 16, 3), dtype=np.uint8)
    meta = {"name": "x", "source": "test", "seed": 0, "licence": "generated"}
    write_dataset(tmp_path / "plain", frames, {}, meta)
    from dsvae.errors import DataError

    with pytest.raises(DataError, match="not a Sprites split"):
        sprites.resolve_test_split(tmp_path / "plain")
    assert json.loads((split.path / "meta.json").read_text())["name"] == "tiny-sprites"


def test_resolve_device_picks_and_refuses(monkeypatch):
    from dsvae.errors import DsvaeError
    from dsvae.machine import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(DsvaeError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(DsvaeError, match="not a device name"):
        resolve_device("tpu7")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
