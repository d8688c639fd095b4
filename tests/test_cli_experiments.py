"""The experiment subcommands end to end on tiny data: Sprites and the bouncing ball."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from dsvae.cli import main
from dsvae.config import load_config
from dsvae.data import SequenceDataset
from dsvae.eval.sprites import probe_metric_names
from dsvae.train.module import train_val_indices
from tiny import as_set, tiny_overrides

SHEETS = Path(__file__).resolve().parents[2] / "shared" / "data" / "lpc-sprites"
needs_sheets = pytest.mark.skipif(
    not SHEETS.is_dir(),
    reason=f"LPC sprite sheets not found at {SHEETS} (licensed data beside the repo)",
)
TINY = as_set(
    tiny_overrides(
        "train.max_epochs=1", "train.progress_bar=false", "train.pictures_every_n_epochs=0"
    )
)


def run(*args) -> int:
    return main([str(a) for a in args])


@needs_sheets
def test_sprites_pipeline(tmp_path, capsys):
    data = tmp_path / "sprites"
    assert run("data", "sprites", "--sheets", SHEETS, "--out", data, "--characters", "2") == 0
    meta = json.loads((data / "train" / "meta.json").read_text())
    assert meta["name"] == "sprites" and "CC-BY-SA" in meta["licence"]
    assert (
        run("judge", "sprites", "--data", data, "--out", tmp_path / "judge", "--epochs", "1") == 0
    )
    accuracy = json.loads((tmp_path / "judge" / "test_accuracy.json").read_text())
    assert set(accuracy) == {"skin", "pants", "tops", "hair", "action"}
    assert (
        run("train", "sprites-cpu", "--data", data / "train", "--out", tmp_path / "run", *TINY) == 0
    )
    capsys.readouterr()
    code = run("evaluate", "sprites", tmp_path / "run", "--judge", tmp_path / "judge", "--data", data,
               "--out", tmp_path / "eval", "--trajectories", "3", "--device", "cpu")  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "| skin |" in out and "action Acc" in out
    report = json.loads((tmp_path / "eval" / "sprites_eval.json").read_text())
    assert 0.0 <= report["table1"]["hair"]["disagreement"] <= 1.0
    for kind in ("reconstruction", "swap"):
        assert set(report["inferred_factors"][kind]) == {
            *("skin", "pants", "tops", "hair"),
            *("action", "motion", "direction"),
        }
    assert "Both factors inferred (diagnostic)" in out
    assert report["test_sequences"] == 18
    assert report["device"] == "cpu" and report["trajectory_sequences"] == 3
    figures = {Path(p).name for p in report["figures"]}
    assert {
        "figure3_a.png",
        "figure3_h.gif",
        "figure4_shared_f.png",
        "figure4_shared_z.png",
    } <= figures
    # a judge for 64x64 frames refuses 32x32 data
    code = run("evaluate", "sprites", tmp_path / "run", "--judge", tmp_path / "judge", "--data",
               tmp_path / "nope", "--out", tmp_path / "e2")  # fmt: skip
    assert code == 2


@needs_sheets
def test_sprites_validation_tools(tmp_path, capsys):
    """The in-training probe, the validation protocol and the ablation runner, on tiny data."""
    data = tmp_path / "sprites"
    assert run("data", "sprites", "--sheets", SHEETS, "--out", data, "--characters", "20") == 0
    judge = tmp_path / "judge"
    assert run("judge", "sprites", "--data", data, "--out", judge, "--epochs", "1") == 0
    run_dir = tmp_path / "run"
    code = run("train", "sprites-cpu", "--data", data / "train", "--out", run_dir, *TINY,
               "--set", "train.max_epochs=2", "--judge", judge, "--judge-characters", "2")  # fmt: skip
    assert code == 0
    with (run_dir / "metrics.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("probe/skin")]
    assert [int(float(r["epoch"])) for r in rows] == [0, 1]  # one probe per epoch
    for name in probe_metric_names():
        assert all(0.0 <= float(r[name]) <= 1.0 for r in rows), name
    assert (run_dir / "disentanglement.png").stat().st_size > 1000

    # the validation characters of the run's own split; the test split is not read
    capsys.readouterr()
    code = run("evaluate", "sprites", run_dir, "--judge", judge, "--data", data, "--split", "val",
               "--out", tmp_path / "eval", "--no-figures")  # fmt: skip
    assert code == 0
    report = json.loads((tmp_path / "eval" / "sprites_eval.json").read_text())
    assert report["split"] == "val"
    cfg = load_config(run_dir / "config.yaml")
    _, val = train_val_indices(SequenceDataset(data / "train"), cfg.train)
    assert report["test_sequences"] == len(val) > 0
    assert "validation" in capsys.readouterr().out

    # a one-variant grid: trained, scored on validation, tabulated
    grid = tmp_path / "grid.yaml"
    tiny = [f"{a}" for a in TINY[1::2] if "max_epochs" not in a]
    grid.write_text(json.dumps({"config": "sprites-cpu", "set": tiny, "budget": {"steps": 3},
                                "probe_every": 0, "variants": [{"name": "tiny"}]}))  # fmt: skip
    out = tmp_path / "abl"
    code = run("ablate", grid, "--data", data, "--judge", judge, "--out", out, "--threads", "1")
    assert code == 0
    table = json.loads((out / "ablation.json").read_text())
    (row,) = table["variants"]
    assert row["name"] == "tiny" and row["status"] == "done" and row["steps"] == 3
    assert 0.0 <= row["table1"]["skin"] <= 1.0
    assert "| tiny |" in (out / "ablation.md").read_text()


def test_bouncing_ball_evaluation(tmp_path, capsys):
    data = tmp_path / "ball"
    assert (
        run(
            "data",
            "bouncing-ball",
            "--out",
            data / "train",
            "--n",
            "20",
            "--length",
            "6",
            "--size",
            "32",
        )
        == 0
    )
    assert (
        run(
            "data",
            "bouncing-ball",
            "--out",
            data / "test",
            "--n",
            "5",
            "--length",
            "6",
            "--seed",
            "1",
        )
        == 0
    )
    runs = []
    for config, seed in [
        ("bouncing-ball", 0),
        ("bouncing-ball", 1),
        ("bouncing-ball-lstm-f", 0),
        ("bouncing-ball-lstm-c", 0),
    ]:
        out = tmp_path / f"{config}-{seed}"
        assert (
            run(
                "train",
                config,
                "--data",
                data / "train",
                "--out",
                out,
                *TINY,
                "--set",
                f"train.seed={seed}",
            )
            == 0
        )
        runs.append(out)
    capsys.readouterr()
    assert (
        run(
            "evaluate",
            "bouncing-ball",
            *runs,
            "--data",
            data / "test",
            "--out",
            tmp_path / "eval",
            "--observed",
            "4",
        )
        == 0
    )
    assert "| missing frames | stochastic | lstm-f | lstm-c |" in capsys.readouterr().out
    curves = json.loads((tmp_path / "eval" / "curves.json").read_text())["curves"]
    assert len(curves["stochastic"]) == 2 and curves["lstm-f"][0]["missing"] == [0, 1, 2, 3, 4, 5]
    assert (tmp_path / "eval" / "figure7.png").is_file() and (
        tmp_path / "eval" / "figure8.png"
    ).is_file()
    # each run keeps its curve; a second evaluation reads it instead of recomputing
    cached = runs[0] / "eval" / "bouncing_ball_curve.json"
    assert (
        json.loads(cached.read_text())["curve"]["error_all"] == curves["stochastic"][0]["error_all"]
    )
    import dsvae.eval.bouncing_ball as protocol

    def no_recompute(*args, **kwargs):
        raise AssertionError("the cached curve should have been used")

    original, protocol.missing_frames_curve = protocol.missing_frames_curve, no_recompute
    try:
        assert run("evaluate", "bouncing-ball", *runs, "--data", data / "test", "--out",
                   tmp_path / "eval2", "--observed", "4") == 0  # fmt: skip
    finally:
        protocol.missing_frames_curve = original
    again = json.loads((tmp_path / "eval2" / "curves.json").read_text())["curves"]
    assert again["lstm-c"][0]["error_all"] == curves["lstm-c"][0]["error_all"]
    # with another limit the key differs and the curve is computed again
    with pytest.raises(AssertionError, match="cached"):
        protocol.missing_frames_curve = no_recompute
        try:
            run("evaluate", "bouncing-ball", runs[0], "--data", data / "test", "--out",
                tmp_path / "eval3", "--limit", "3", "--observed", "4")  # fmt: skip
        finally:
            protocol.missing_frames_curve = original
    assert (
        run(
            "evaluate",
            "bouncing-ball",
            runs[0],
            "--data",
            data / "test",
            "--out",
            tmp_path / "e",
            "--observed",
            "9",
        )
        == 2
    )
