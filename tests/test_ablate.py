"""Validation by character, the in-training probe, and the ablation runner's checks."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dsvae.ablate import Grid, parse_grid, read_grid, run_grid
from dsvae.ablate_table import table_markdown
from dsvae.cli import main
from dsvae.config import TrainConfig
from dsvae.data import SequenceDataset, SequenceSubset, split_groups, write_dataset
from dsvae.errors import ConfigError, DataError, DsvaeError
from dsvae.eval import sprites
from dsvae.model import DSVAE
from dsvae.train.csv_log import RunCSVLogger
from dsvae.train.module import train_val_indices
from tiny import tiny_model

CHARACTERS = 20


@pytest.fixture(scope="module")
def toy_sprites(tmp_path_factory) -> SequenceDataset:
    """A Sprites-shaped training split: 20 characters x 9 actions, 16x16 frames, T = 4."""
    rng = np.random.default_rng(0)
    ids = rng.permutation(1296)[:CHARACTERS]
    character = np.tile(ids, 9)
    action = np.repeat(np.arange(9), CHARACTERS)
    c = character
    labels = {
        "character": character,
        "action": action,
        "attributes": np.stack([c // 216, (c // 36) % 6, (c // 6) % 6, c % 6], axis=1),
    }
    frames = rng.integers(0, 256, size=(len(character), 4, 16, 16, 3), dtype=np.uint8)
    meta = {"name": "toy-sprites", "source": "tests", "seed": 0, "licence": "generated"}
    root = tmp_path_factory.mktemp("toy-sprites")
    return SequenceDataset(write_dataset(root / "train", frames, labels, meta))


# ----------------------------------------------------------------------------- the split


def test_split_groups_holds_out_whole_groups():
    groups = np.repeat(np.arange(50), 3)[np.random.default_rng(1).permutation(150)]
    train, val = split_groups(groups, 0.1, seed=0)
    assert len(np.unique(groups[val])) == 5 and len(val) == 15
    assert not set(groups[train]) & set(groups[val])
    assert sorted([*train, *val]) == list(range(150))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
    # the held-out groups depend on the labels and the seed, not on the sequence order
    order = np.random.default_rng(2).permutation(150)
    _, val2 = split_groups(groups[order], 0.1, seed=0)
    assert set(groups[order][val2]) == set(groups[val])
    _, val3 = split_groups(groups, 0.1, seed=1)
    assert set(groups[val3]) != set(groups[val])


def test_split_groups_refuses_a_single_group():
    with pytest.raises(DataError, match="1 distinct value"):
        split_groups(np.zeros(10, dtype=int), 0.1, seed=0)


def test_train_val_indices_by_character(toy_sprites):
    cfg = TrainConfig(val_fraction=0.1, val_group="character", val_seed=0)
    train, val = train_val_indices(toy_sprites, cfg)
    chars = toy_sprites.labels["character"]
    assert len(np.unique(chars[val])) == 2 and len(val) == 18  # 2 characters x 9 actions
    assert not set(chars[train]) & set(chars[val])
    # a fixed val_seed keeps the validation characters for every training seed
    other = TrainConfig(seed=5, val_fraction=0.1, val_group="character", val_seed=0)
    assert np.array_equal(train_val_indices(toy_sprites, other)[1], val)
    # without val_seed the training seed draws them, as for the random split
    random = train_val_indices(toy_sprites, TrainConfig(val_fraction=0.1))[1]
    assert len(random) == 18 and len(np.unique(chars[random])) > 2


def test_val_group_must_be_a_label(toy_sprites):
    with pytest.raises(ConfigError, match="no such label"):
        train_val_indices(toy_sprites, TrainConfig(val_group="speaker"))
    with pytest.raises(ConfigError, match="train.val_group"):
        TrainConfig(val_group="")


def test_sequence_subset_matches_its_parent(toy_sprites):
    idx = [5, 0, 100]
    sub = SequenceSubset(toy_sprites, idx)
    assert len(sub) == 3 and sub.length == 4 and sub.frame_shape == (3, 16, 16)
    assert np.array_equal(sub.frames, np.asarray(toy_sprites.frames[idx]))
    assert np.array_equal(sub.labels["action"], toy_sprites.labels["action"][idx])
    assert torch.equal(sub[2], toy_sprites[100])
    with pytest.raises(DataError, match="subset indices"):
        SequenceSubset(toy_sprites, [len(toy_sprites)])


def test_validation_split_keeps_the_lowest_characters(toy_sprites):
    cfg = TrainConfig(val_fraction=0.25, val_group="character", val_seed=0)
    whole = sprites.validation_split(toy_sprites.path, cfg)
    assert len(np.unique(whole.labels["character"])) == 5
    part = sprites.validation_split(toy_sprites.path.parent, cfg, characters=2)  # DIR/train
    kept = np.unique(whole.labels["character"])[:2]
    assert set(part.labels["character"]) == set(kept) and len(part) == 18
    with pytest.raises(DataError, match="no validation sequences"):
        sprites.validation_split(toy_sprites.path, TrainConfig(val_fraction=0.0))


# ----------------------------------------------------------------------------- the probe


class UniformJudge:
    """The same uniform probabilities for every frame and sequence."""

    def __init__(self, data: SequenceDataset) -> None:
        self.data = data

    def predict_proba(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        b, t = x.shape[:2]
        out = {name: torch.full((b, t, 6), 1 / 6) for name in sprites.ATTRIBUTES}
        out["action"] = torch.full((b, 9), 1 / 9)
        return out


def _tiny_model() -> DSVAE:
    return tiny_model("model.frame_shape=[3,16,16]")


def test_probe_is_one_flat_row_and_leaves_the_model_and_random_state(toy_sprites):
    model = _tiny_model().train()
    subset = SequenceSubset(toy_sprites, np.arange(0, 180, 10))
    judge = UniformJudge(toy_sprites)  # uniform everywhere: every argmax is class 0
    state = torch.get_rng_state()
    row = sprites.probe(model, judge, subset, seed=0)
    assert model.training and torch.equal(torch.get_rng_state(), state)
    assert tuple(row) == sprites.probe_metric_names()
    # a judge that answers class 0 for everything never disagrees with itself, and its
    # action accuracy is the share of sequences whose label is 0
    assert all(row[k] == 0.0 for k in row if k != "probe/action_acc")
    expected = float(np.mean(subset.labels["action"] == 0))
    assert row["probe/action_acc"] == pytest.approx(expected)
    assert sprites.probe(model, judge, subset, seed=0) == row


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_csv_logger_widens_its_header_on_a_resume_with_more_columns(tmp_path):
    first = RunCSVLogger(tmp_path, ("train/loss",))
    first.log_metrics({"train/loss": 1.0}, step=1)
    first.save()
    second = RunCSVLogger(tmp_path, ("train/loss", "probe/skin"))
    second.log_metrics({"train/loss": 2.0, "probe/skin": 0.5}, step=2)
    second.save()
    rows = _csv_rows(tmp_path / "metrics.csv")
    assert [(r["step"], r["train/loss"], r["probe/skin"]) for r in rows] == [
        ("1", "1.0", ""),
        ("2", "2.0", "0.5"),
    ]
    # and back: a resume without the probe keeps the probe column and its values
    third = RunCSVLogger(tmp_path, ("train/loss",))
    third.truncate_after(2)
    third.log_metrics({"train/loss": 3.0}, step=3)
    third.save()
    rows = _csv_rows(tmp_path / "metrics.csv")
    assert [r["probe/skin"] for r in rows] == ["", "0.5", ""]


# ----------------------------------------------------------------------------- grids


def _grid(**changes) -> dict:
    grid = {
        "config": "sprites-cpu",
        "budget": {"epochs": 1},
        "variants": [{"name": "baseline"}, {"name": "z4", "set": ["model.z_dim=4"]}],
    }
    return {**grid, **changes}


def test_parse_grid_builds_every_variant():
    grid = parse_grid(_grid(set=["train.lr=5e-4"]))
    assert [v.name for v in grid.variants] == ["baseline", "z4"]
    base, z4 = (v.config for v in grid.variants)
    assert base.model.z_dim == 16 and z4.model.z_dim == 4
    assert base.train.lr == z4.train.lr == 5e-4
    assert base.train.max_epochs == 1 and base.train.max_time_minutes is None
    minutes = parse_grid(_grid(budget={"minutes": 3}))
    assert minutes.variants[0].config.train.max_time_minutes == 3
    steps = parse_grid(_grid(budget={"steps": 40})).variants[0].config.train
    assert steps.max_steps == 40 and steps.max_time_minutes is None


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ([1, 2], "must be a mapping"),
        (_grid(variants=[]), "non-empty list"),
        (_grid(variants="baseline"), "non-empty list"),
        (_grid(variants=[{"name": "a"}, {"name": "a"}]), "two variants are named 'a'"),
        (_grid(variants=[{"name": "a b"}]), "needs a name"),
        (_grid(variants=[{"name": "a", "sett": []}]), "must be a mapping with 'name'"),
        (_grid(variants=[{"name": "a", "set": "model.z_dim=4"}]), "KEY=VALUE"),
        (_grid(variants=[{"name": "a", "set": ["model.zdim=4"]}]), "variant 'a'.*unknown key"),
        (_grid(variants=[{"name": "a", "set": ["model.z_dim=-1"]}]), "variant 'a'.*z_dim"),
        (_grid(budget={"hours": 1}), "'budget'"),
        (_grid(budget={"epochs": 0}), "'budget'"),
        (_grid(budget={"steps": -5}), "'budget'"),
        (_grid(grid="x"), "unknown key 'grid'"),
        (_grid(probe_every=-1), "probe_every"),
        (_grid(config="no-such-config"), "no-such-config"),
    ],
)
def test_parse_grid_refuses_bad_grids(grid, message):
    with pytest.raises(ConfigError, match=message):
        parse_grid(grid)


def _write(path: Path, grid: dict) -> Path:
    path.write_text(yaml.safe_dump(grid), encoding="utf-8")
    return path


def test_cli_refuses_bad_grids_and_writes_nothing(tmp_path, capsys, toy_sprites):
    judge = tmp_path / "judge"  # never read: the grid is refused first
    bad = _write(tmp_path / "bad.yaml", _grid(variants=[{"name": "a", "set": ["train.nope=1"]}]))
    out = tmp_path / "out"
    code = main(["ablate", str(bad), "--data", str(toy_sprites.path.parent), "--judge",
                 str(judge), "--out", str(out)])  # fmt: skip
    assert code == 2 and not out.exists()
    err = capsys.readouterr().err
    assert "unknown key train.nope" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "empty.yaml").write_text("", encoding="utf-8")
    code = main(["ablate", str(tmp_path / "empty.yaml"), "--data", str(toy_sprites.path.parent),
                 "--judge", str(judge), "--out", str(out)])  # fmt: skip
    assert code == 2 and not out.exists()
    assert "must be a mapping" in capsys.readouterr().err


def test_a_folder_with_another_grid_is_refused(tmp_path, toy_sprites, monkeypatch):
    monkeypatch.setattr("dsvae.eval.judge.read_judge_json", lambda path: None)
    out = tmp_path / "grid"
    out.mkdir()
    _write(out / "grid.yaml", _grid(budget={"epochs": 2}))
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(DsvaeError, match="holds another grid"):
        run_grid(parse_grid(_grid()), toy_sprites.path.parent, tmp_path, out)
    assert sorted(p.name for p in out.iterdir()) == before
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(DsvaeError, match="not an ablation folder"):
        run_grid(parse_grid(_grid()), toy_sprites.path.parent, tmp_path, other)
    with pytest.raises(ConfigError, match="no variant named 'z9'"):
        run_grid(parse_grid(_grid()), toy_sprites.path.parent, tmp_path, tmp_path / "new",
                 only=["z9"])  # fmt: skip
    assert not (tmp_path / "new").exists()


def test_read_grid_reports_unreadable_files(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(ConfigError, match="grid file .* is not (UTF-8 text|valid YAML)"):
        read_grid(path)
    path.write_text("variants: [", encoding="utf-8")
    with pytest.raises(ConfigError, match="grid file .* is not (UTF-8 text|valid YAML)"):
        read_grid(path)


def test_table_lists_each_variant_with_its_scores():
    grid = parse_grid(_grid())
    rows = [
        {"name": "baseline", "set": [], "status": "done", "steps": 10, "epochs": 1,
         "train_minutes": 0.5, "val_elbo": -12.34,
         "table1": dict.fromkeys(("skin", "pants", "tops", "hair", "action", "motion",
                                  "direction"), 0.125),
         "action_acc": 0.9, "swap": {"skin": 0.25, "direction": 0.5}},
        {"name": "z4", "set": ["model.z_dim=4"], "status": "failed"},
    ]  # fmt: skip
    text = table_markdown(grid, rows, "test machine")
    lines = [line for line in text.splitlines() if line.startswith("| baseline")]
    assert lines == [
        "| baseline | — | 10 | 1 | 0.5 | -12.3 | 12.5 | 12.5 | 12.5 | 12.5 | 12.5 | 12.5 | 12.5 "
        "| 90.0 | 25.0 | 50.0 | done |"
    ]
    assert "| z4 | `model.z_dim=4` | — |" in text and text.rstrip().endswith("failed |")
    assert isinstance(grid, Grid) and "1 epochs" in text
    assert json.dumps(rows)  # rows are plain JSON


@pytest.mark.parametrize(
    "path",
    sorted((Path(__file__).resolve().parents[1] / "grids").glob("*.yaml")),
    ids=lambda p: p.name,
)
def test_every_shipped_grid_parses(path):
    grid = read_grid(path)
    assert grid.variants and len({v.name for v in grid.variants}) == len(grid.variants)
    assert f"grids/{path.name}" in path.read_text()  # its header says how to run it
