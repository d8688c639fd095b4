"""The Sprites judge: learning labels, saving and loading safely, refusing unsuitable data."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import Payload
from dsvae.data import write_dataset
from dsvae.errors import ConfigError, DataError, DsvaeError, ModelFileError
from dsvae.eval.judge import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    JudgeConfig,
    SpritesJudge,
    check_frame_shape,
    judge_accuracy,
    load_judge,
    read_judge_json,
    save_judge,
)
from dsvae.train.judge import train_judge

SHEETS = Path(__file__).resolve().parents[2] / "shared" / "data" / "lpc-sprites"
COLOURS = np.array([[230, 40, 40], [40, 230, 40], [60, 60, 240]], dtype=np.uint8)
CORNERS = [(2, 2), (2, 14), (14, 2), (14, 14)]  # top-left of the 8x8 square, in a 24-row area
T = 4


def tiny_config(**changes) -> JudgeConfig:
    """A judge for the toy data below: 32x32 RGB, two attributes, two actions, T=4."""
    base = dict(
        frame_shape=[3, 32, 32],
        channels=[8, 16],
        feature_dim=32,
        attributes=(("colour", 3), ("corner", 4)),
        n_actions=2,
        length=T,
    )
    return JudgeConfig(**{**base, **changes})


def toy_frames(n: int, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Sequences whose labels can be read off the pictures.

    A coloured 8x8 square (``colour``) sits in one of four places (``corner``) for the whole
    sequence; a white dot in the bottom strip moves right (action 0) or left (action 1), so
    the action needs more than one frame.
    """
    rng = np.random.default_rng(seed)
    colour, corner, action = rng.integers(0, 3, n), rng.integers(0, 4, n), rng.integers(0, 2, n)
    frames = np.zeros((n, T, 32, 32, 3), dtype=np.uint8)
    frames += rng.integers(0, 30, (n, 1, 32, 32, 1), dtype=np.uint8)  # per-sequence noise
    for i in range(n):
        r, c = CORNERS[corner[i]]
        frames[i, :, r : r + 8, c : c + 8] = COLOURS[colour[i]]
        steps = range(T) if action[i] == 0 else reversed(range(T))
        for t, s in enumerate(steps):
            frames[i, t, 26:30, 3 + 7 * s : 7 + 7 * s] = 255
    labels = {"attributes": np.stack([colour, corner], axis=1), "action": action}
    return frames, labels


def write_toy(path: Path, n: int, seed: int, **drop_or_replace) -> Path:
    frames, labels = toy_frames(n, seed)
    for key, value in drop_or_replace.items():
        if value is None:
            labels.pop(key)
        else:
            labels[key] = value
    meta = {"name": "toy", "source": "tests", "seed": seed, "licence": "CC0"}
    return write_dataset(path, frames, labels, meta)


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("toy")
    return {
        "train": write_toy(root / "train", 160, seed=1),
        "test": write_toy(root / "test", 64, 2),
    }


@pytest.fixture(scope="module")
def trained(toy, tmp_path_factory):
    out = tmp_path_factory.mktemp("judge") / "judge"
    kwargs = dict(epochs=8, batch_size=16, lr=3e-3, progress_bar=False, accelerator="cpu")
    return train_judge(toy["train"], out, config=tiny_config(), val_fraction=0.1, **kwargs)


# ----------------------------------------------------------------------------- the network


def test_forward_gives_logits_per_head_and_predict_proba_restores_the_mode():
    torch.manual_seed(0)
    judge = SpritesJudge(tiny_config())
    x = torch.rand(3, T, 3, 32, 32)
    logits = judge(x)
    assert {k: tuple(v.shape) for k, v in logits.items()} == {
        "colour": (3, T, 3),
        "corner": (3, T, 4),
        "action": (3, 2),
    }
    assert judge.training
    probs = judge.predict_proba(x)
    assert judge.training  # restored
    assert not any(p.requires_grad for p in probs.values())
    for p in probs.values():
        torch.testing.assert_close(p.sum(-1), torch.ones(p.shape[:-1]))
    judge.eval()
    torch.testing.assert_close(probs["colour"], judge(x)["colour"].softmax(-1))


def test_forward_refuses_frames_of_the_wrong_shape_or_dtype():
    judge = SpritesJudge(tiny_config())
    with pytest.raises(DataError, match="prepare_frames"):
        judge(torch.zeros(1, T, 32, 32, 3, dtype=torch.uint8))
    with pytest.raises(DataError, match=r"\(B, T, 3, 32, 32\)"):
        judge(torch.zeros(1, T, 3, 64, 64))


def test_default_config_is_the_sprites_judge():
    config = JudgeConfig()
    assert config.frame_shape == [3, 64, 64] and config.length == 8
    assert config.heads == {"skin": 6, "pants": 6, "tops": 6, "hair": 6, "action": 9}
    out = SpritesJudge(config).eval()(torch.rand(1, 8, 3, 64, 64))
    assert out["hair"].shape == (1, 8, 6) and out["action"].shape == (1, 9)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"frame_shape": [4, 32, 32]}, "frame_shape"),
        ({"frame_shape": [3, 30, 32]}, "multiples of 4"),
        ({"channels": []}, "channels"),
        ({"feature_dim": 0}, "feature_dim"),
        ({"n_actions": 1}, "n_actions"),
        ({"attributes": (("a", 3), ("a", 2))}, "unique"),
        ({"attributes": (("a", 1),)}, "at least 2 classes"),
        ({"attributes": "abc"}, "pairs"),
    ],
)
def test_config_rejects_bad_values(changes, match):
    with pytest.raises(ConfigError, match=match):
        tiny_config(**changes)


# ----------------------------------------------------------------------------- training


def test_training_learns_the_labels(trained, toy):
    """Chance is 1/3, 1/4 and 1/2; after a few seconds of training the judge reads all three."""
    acc = judge_accuracy(trained.judge, toy["test"])
    assert set(acc) == {"colour", "corner", "action"}
    assert acc["colour"] >= 0.95 and acc["corner"] >= 0.95
    assert acc["action"] >= 0.9
    assert set(trained.val_accuracy) == set(acc) and trained.epochs == 8
    assert len(trained.history) == 8 and trained.history[-1]["epoch"] == 8


def test_training_saves_config_and_info(trained, toy):
    files = sorted(p.name for p in trained.out_dir.iterdir())
    assert files == [CONFIG_FILE, WEIGHTS_FILE]
    config, info = read_judge_json(trained.out_dir)
    assert config == tiny_config()
    assert info["data"] == str(toy["train"].resolve())
    assert info["epochs"] == 8 and info["seed"] == 0
    assert info["train_sequences"] + info["val_sequences"] == 160
    assert info["val_accuracy"] == pytest.approx(trained.val_accuracy)


def test_save_load_round_trip_gives_identical_logits(trained, tmp_path):
    x = torch.rand(2, T, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    loaded = load_judge(trained.out_dir)
    assert not loaded.training
    expected = trained.judge.eval()(x)
    for name, logits in loaded(x).items():
        assert torch.equal(logits, expected[name])
    save_judge(loaded, tmp_path / "again", {"note": "copy"})
    assert read_judge_json(tmp_path / "again")[1] == {"note": "copy"}
    assert torch.equal(load_judge(tmp_path / "again")(x)["action"], expected["action"])


def test_the_same_seed_trains_the_same_judge(toy, tmp_path):
    kwargs = dict(config=tiny_config(), epochs=1, progress_bar=False, accelerator="cpu", seed=5)
    a = train_judge(toy["train"], tmp_path / "a", **kwargs).judge.state_dict()
    b = train_judge(toy["train"], tmp_path / "b", **kwargs)
    assert all(torch.equal(a[k], v) for k, v in b.judge.state_dict().items())
    # without held-out sequences there is nothing to report, and nothing fails
    c = train_judge(toy["train"], tmp_path / "c", val_fraction=0.0, **kwargs)
    assert c.val_accuracy == {} and c.history == []
    assert read_judge_json(tmp_path / "c")[1]["train_sequences"] == 160


def test_existing_out_dir_is_refused(toy, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    kwargs = dict(config=tiny_config(), epochs=1, progress_bar=False, accelerator="cpu")
    with pytest.raises(DsvaeError, match="overwrite=True"):
        train_judge(toy["train"], taken, **kwargs)
    with pytest.raises(DsvaeError, match="holds no judge"):
        train_judge(toy["train"], taken, overwrite=True, **kwargs)
    assert sorted(p.name for p in taken.iterdir()) == ["notes.txt"]
    # a judge folder may be replaced when asked to
    train_judge(toy["train"], tmp_path / "judge", **kwargs)
    with pytest.raises(DsvaeError, match="not empty"):
        train_judge(toy["train"], tmp_path / "judge", **kwargs)
    train_judge(toy["train"], tmp_path / "judge", overwrite=True, **{**kwargs, "seed": 1})
    assert read_judge_json(tmp_path / "judge")[1]["seed"] == 1


def test_missing_labels_are_refused(tmp_path):
    data = write_toy(tmp_path / "no_action", 8, seed=0, action=None)
    with pytest.raises(DataError, match="'action' labels"):
        train_judge(data, tmp_path / "out", config=tiny_config(), progress_bar=False)
    data = write_toy(tmp_path / "bad_range", 8, seed=0, action=np.full(8, 5))
    with pytest.raises(DataError, match=r"'action' must hold integers in 0..1"):
        train_judge(data, tmp_path / "out", config=tiny_config(), progress_bar=False)
    assert not (tmp_path / "out").exists()


def test_frames_of_another_size_are_refused(toy, tmp_path):
    with pytest.raises(DataError, match="trained on 64x64 RGB frames, the data has 32x32 RGB"):
        train_judge(toy["train"], tmp_path / "out", progress_bar=False)  # default 64x64 judge
    with pytest.raises(DataError, match="trained on 64x64 RGB frames, the data has 32x32 RGB"):
        check_frame_shape(SpritesJudge(JudgeConfig()), (3, 32, 32))
    check_frame_shape(SpritesJudge(tiny_config()), (3, 32, 32))  # no error


# ----------------------------------------------------------------------------- loading errors


@pytest.fixture
def saved(tmp_path) -> Path:
    torch.manual_seed(0)
    return save_judge(SpritesJudge(tiny_config()), tmp_path / "judge", {})


def test_load_reports_missing_files(saved, tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_judge(tmp_path / "nowhere")
    (saved / WEIGHTS_FILE).unlink()
    with pytest.raises(ModelFileError, match=f"no {WEIGHTS_FILE}"):
        load_judge(saved)
    (saved / CONFIG_FILE).unlink()
    with pytest.raises(ModelFileError, match=f"no {CONFIG_FILE}"):
        load_judge(saved)


def test_load_reports_a_bad_config(saved):
    (saved / CONFIG_FILE).write_text("{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_judge(saved)
    (saved / CONFIG_FILE).write_text(json.dumps({"format": "something-else", "config": {}}))
    with pytest.raises(ModelFileError, match="not a dsvae judge config"):
        load_judge(saved)
    (saved / CONFIG_FILE).write_text(json.dumps({"format": "dsvae-judge", "config": {"x": 1}}))
    with pytest.raises(ModelFileError, match="unknown judge config key 'x'"):
        load_judge(saved)


def test_a_pickle_in_place_of_the_weights_is_never_unpickled(saved, tmp_path):
    sentinel = tmp_path / "code-ran"
    (saved / WEIGHTS_FILE).write_bytes(pickle.dumps({"w": Payload(sentinel)}))
    with pytest.raises(ModelFileError, match="not a valid safetensors file"):
        load_judge(saved)
    assert not sentinel.exists()


def test_weights_of_another_shape_are_refused(saved):
    data = json.loads((saved / CONFIG_FILE).read_text())
    data["config"]["feature_dim"] = 48
    (saved / CONFIG_FILE).write_text(json.dumps(data))
    with pytest.raises(ModelFileError, match="does not match"):
        load_judge(saved)


# ----------------------------------------------------------------------------- real Sprites


@pytest.mark.slow
@pytest.mark.skipif(not SHEETS.is_dir(), reason=f"the LPC sheets are not in {SHEETS}")
def test_default_judge_reads_the_real_sprites(tmp_path):
    """Minutes: builds the Sprites set, trains the default judge, >= 99.5% on every test head."""
    sprites = pytest.importorskip("dsvae.data.sprites")
    sprites.build_sprites(SHEETS, tmp_path / "sprites")
    result = train_judge(tmp_path / "sprites" / "train", tmp_path / "judge", progress_bar=False)
    acc = judge_accuracy(result.judge, tmp_path / "sprites" / "test")
    assert min(acc.values()) >= 0.995, acc
