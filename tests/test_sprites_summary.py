"""docs/results/sprites-summary.json: built from run folders and test-split evaluations."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest
import yaml

from dsvae.errors import DataError
from dsvae.eval.sprites_summary import summary_entry

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "sprites_summary.py"
MACHINE = {"cpu_count": 2, "processor": "x86_64", "torch": "2.13.0+cpu", "cuda": None}


def _fake_run(root: Path, name: str, *, split: str = "test", contrast: float = 0.0) -> tuple:
    run, ev = root / "runs" / name, root / "eval" / name
    run.mkdir(parents=True)
    ev.mkdir(parents=True)
    config = {"model": {"posterior": "full"}, "train": {"seed": 1, "contrast_weight": contrast}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    summary = {"global_step": 5846, "epochs": 22, "wall_time_s": 60.0, "train_time_s": 7200.0}
    (run / "summary.json").write_text(json.dumps(summary))
    rows = {"skin": 0.188, "pants": 0.0432, "tops": 0.0004, "hair": 0.0, "action": 0.3119}
    report = {
        "split": split,
        "machine": MACHINE,
        "table1": {k: {"disagreement": v, "kl_recon": 1.0} for k, v in rows.items()},
        "later_work": {"action_acc": 0.6922},
    }
    (ev / "sprites_eval.json").write_text(json.dumps(report))
    return run, ev


def test_an_entry_holds_what_the_run_and_its_evaluation_wrote(tmp_path):
    run, ev = _fake_run(tmp_path, "a")
    entry = summary_entry("a", "sprites-cpu", run, ev)
    assert entry["posterior"] == "full" and entry["objective"] == "elbo"
    assert entry["seed"] == 1 and entry["split"] == "test"
    assert entry["wall_minutes"] == 120.0  # the whole run's training time, not the last call's
    assert entry["epochs"] == 22 and entry["steps"] == 5846
    assert entry["table1"] == {
        "skin": 0.188,
        "pants": 0.0432,
        "tops": 0.0004,
        "hair": 0.0,
        "action": 0.3119,
    }
    assert entry["acc"] == 0.6922
    assert entry["hardware"] == "2-core x86_64, torch 2.13.0+cpu"
    run, ev = _fake_run(tmp_path, "b", contrast=100.0)
    assert summary_entry("b", "sprites-cpu", run, ev, "H200")["objective"] == "contrastive"
    assert summary_entry("b", "sprites-cpu", run, ev, "H200")["hardware"] == "H200"


def test_validation_numbers_are_refused(tmp_path):
    run, ev = _fake_run(tmp_path, "v", split="val")
    with pytest.raises(DataError, match="'val' split; the summary holds test-split numbers only"):
        summary_entry("v", "sprites-cpu", run, ev)


def _script(monkeypatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    return done.value.code


def test_the_script_writes_the_summary_and_refuses_bad_manifests(tmp_path, monkeypatch, capsys):
    items = []
    for name in ("full-s0", "full-s1"):
        run, ev = _fake_run(tmp_path, name)
        items.append({"name": name, "config": "sprites-cpu", "run": str(run), "eval": str(ev)})
    manifest = tmp_path / "final.yaml"
    manifest.write_text(yaml.safe_dump(items))
    out = tmp_path / "summary.json"
    assert _script(monkeypatch, str(manifest), "--out", str(out)) == 0
    runs = json.loads(out.read_text())["runs"]
    assert [r["name"] for r in runs] == ["full-s0", "full-s1"]
    assert all(0.0 <= v <= 1.0 for r in runs for v in r["table1"].values())

    manifest.write_text(yaml.safe_dump([{"name": "x", "run": "r"}]))
    out.unlink()
    assert _script(monkeypatch, str(manifest), "--out", str(out)) == 2
    assert "lacks ['config', 'eval']" in capsys.readouterr().err
    assert not out.exists()
    manifest.write_text(yaml.safe_dump(items + items[:1]))
    assert _script(monkeypatch, str(manifest), "--out", str(out)) == 2
    assert "run names must be distinct" in capsys.readouterr().err
    assert not out.exists()
