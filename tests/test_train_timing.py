"""Time to result: validation every K epochs on a fixed subset, checkpoints off the
training thread, where a run's time goes (summary.json), and the end-to-end benchmark."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from dsvae.data import make_bouncing_ball_dataset
from dsvae.errors import ConfigError
from dsvae.train import train
from dsvae.train.checkpoints import AtomicCheckpointIO
from dsvae.train.run import checkpoint_io, resume_checkpoint
from dsvae.train.timing import StageClock, TimedCheckpointIO
from tiny import train_config

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


class ValidationCounter(pl.Callback):
    """Which epochs validated, and how many batches each pass saw."""

    def __init__(self) -> None:
        self.passes: list[tuple[int, int]] = []

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self.passes.append((trainer.current_epoch, 0))

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *args) -> None:
        epoch, count = self.passes[-1]
        self.passes[-1] = (epoch, count + 1)


def test_validation_every_k_epochs_on_a_fixed_subset(ball80_dir, tmp_path):
    # 160 sequences at val_fraction 0.25: 40 to validate, 3 batches of 16
    data = make_bouncing_ball_dataset(tmp_path / "d", n=160, length=6, size=16, seed=4)
    counter = ValidationCounter()
    config = train_config(
        "train.max_epochs=5",
        "train.val_fraction=0.25",
        "train.val_every_n_epochs=2",
        "train.val_max_batches=2",
    )
    train(config, data, tmp_path / "run", callbacks=[counter])
    assert counter.passes == [(1, 2), (3, 2)]  # epochs 2 and 4, two of the three batches
    with open(tmp_path / "run" / "metrics.csv", newline="") as fh:
        val_epochs = [int(r["epoch"]) for r in csv.DictReader(fh) if r.get("val/elbo")]
    assert val_epochs == [1, 3]
    # checkpoints still come at every epoch's end, validated or not
    saved = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("epoch*.ckpt"))
    assert saved == ["epoch0003.ckpt", "epoch0004.ckpt"]  # save_top_k=2 of epochs 0..4


def test_the_summary_says_where_the_time_went(ball80_dir, tmp_path):
    train(train_config("train.max_epochs=2"), ball80_dir, tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    times = summary["time_s"]
    assert set(times) == {
        "startup", "steps", "validation", "checkpoints", "other", "total", "first_step"
    }  # fmt: skip
    assert all(v >= 0 for v in times.values())
    assert 0 < times["first_step"] < times["steps"]
    parts = times["startup"] + times["steps"] + times["validation"] + times["checkpoints"]
    assert parts + times["other"] == pytest.approx(times["total"], abs=0.01)
    assert times["steps"] > 0 and times["validation"] > 0 and times["checkpoints"] > 0
    # 76 training sequences per epoch, two epochs, over the whole time
    assert summary["sequences_per_s"] == pytest.approx(152 / times["total"], rel=0.02)


def test_async_checkpoints_write_the_same_resumable_files(ball80_dir, tmp_path):
    for mode in ("false", "true"):
        train(
            train_config("train.max_epochs=2", f"train.async_checkpoints={mode}"),
            ball80_dir,
            tmp_path / mode,
        )
    sync = AtomicCheckpointIO().load_checkpoint(tmp_path / "false" / "checkpoints" / "last.ckpt")
    threaded = AtomicCheckpointIO().load_checkpoint(tmp_path / "true" / "checkpoints" / "last.ckpt")
    assert threaded["global_step"] == sync["global_step"] == 10
    for key, value in sync["state_dict"].items():
        torch.testing.assert_close(threaded["state_dict"][key], value)  # same seed, same run
    # and the threaded run resumes from its own checkpoint
    more = train_config("train.max_epochs=3", "train.async_checkpoints=true")
    result = train(more, ball80_dir, tmp_path / "true", resume=True)
    assert result.global_step == 15
    assert resume_checkpoint(tmp_path / "true").name == "last.ckpt"


def test_checkpoint_io_follows_the_setting_and_the_clock():
    cfg = train_config().train
    assert isinstance(checkpoint_io(cfg), AtomicCheckpointIO)  # no CUDA here: synchronous
    clock = StageClock()
    timed = checkpoint_io(train_config("train.async_checkpoints=true").train, clock)
    assert isinstance(timed, TimedCheckpointIO) and clock.checkpoint_io is timed
    assert type(timed.inner).__name__ == "AsyncCheckpointIO"


def test_timed_checkpoint_io_counts_the_wait(tmp_path):
    io = TimedCheckpointIO(AtomicCheckpointIO())
    io.save_checkpoint({"w": torch.ones(3)}, tmp_path / "a.ckpt")
    io.save_checkpoint({"w": torch.zeros(3)}, tmp_path / "a.ckpt")
    assert io.saves == 2 and io.save_seconds > 0
    torch.testing.assert_close(io.load_checkpoint(tmp_path / "a.ckpt")["w"], torch.zeros(3))
    io.remove_checkpoint(tmp_path / "a.ckpt")
    assert not (tmp_path / "a.ckpt").exists()


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.val_every_n_epochs=0", "train.val_every_n_epochs must be > 0"),
        ("train.val_max_batches=-1", "train.val_max_batches must be > 0"),
        ("train.compile_mode=fast", "train.compile_mode must be one of"),
    ],
)
def test_bad_timing_settings_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        train_config(override)


def test_compile_mode_reaches_torch_compile(ball80_dir, tmp_path, monkeypatch):
    modes = []

    def fake_compile(model, mode=None):
        modes.append(mode)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    config = train_config(
        "train.max_steps=1", "train.torch_compile=true", "train.compile_mode=reduce-overhead"
    )
    train(config, ball80_dir, tmp_path / "run")
    assert modes == ["reduce-overhead"]


def _end_to_end():
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_end_to_end", BENCH / "end_to_end.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_end_to_end_benchmark_reports_each_setting_against_the_step(tmp_path):
    e2e = _end_to_end()
    report = e2e.main(
        [
            "--config", "quickstart", "--sequences", "96", "--steps", "6", "--rounds", "1",
            "--step-steps", "2", "--warmup", "1", "--tiny", "--threads", "1",
            "--set", "train.batch_size=16",
            "--setting", "no-val=train.val_fraction=0",
            "--json", str(tmp_path / "e2e.json"), "--markdown", str(tmp_path / "e2e.md"),
        ]
    )  # fmt: skip
    assert set(report["settings"]) == {"before", "shipped", "no-val"}
    assert report["step_seq_per_s"] > 0
    for name, entry in report["settings"].items():
        assert entry["steps"] == 6, name
        assert entry["fraction_of_step"] == pytest.approx(
            entry["sequences_per_s"] / report["step_seq_per_s"]
        )
    assert report["settings"]["no-val"]["time_s"]["validation"] == 0
    assert report["settings"]["before"]["time_s"]["validation"] > 0
    table = (tmp_path / "e2e.md").read_text()
    assert table.count("\n| ") == 4  # header + three settings
    assert json.loads((tmp_path / "e2e.json").read_text())["steps_per_run"] == 6


def test_end_to_end_setting_syntax():
    e2e = _end_to_end()
    assert e2e.parse_setting("a=train.lr=0.1,train.seed=2") == (
        "a",
        ["train.lr=0.1", "train.seed=2"],
    )
    assert e2e.parse_setting("plain=") == ("plain", [])
    with pytest.raises(Exception, match="NAME=KEY=VALUE"):
        e2e.parse_setting("nothing")


def _time_to_result():
    path = Path(__file__).resolve().parents[1] / "scripts" / "time_to_result.py"
    spec = importlib.util.spec_from_file_location("time_to_result", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_time_to_result_puts_the_step_the_run_and_table1_side_by_side(ball80_dir, tmp_path):
    out = tmp_path / "out"
    train(train_config("train.max_epochs=1"), ball80_dir, tmp_path / "run")
    (out / "eval").mkdir(parents=True)
    (out / "summary.json").write_text((tmp_path / "run" / "summary.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    step = 2 * summary["sequences_per_s"]
    bench = {
        "machine": {"device": "cpu"},
        "configs": {"sprites": {"training": {"ours_seq_per_s": step}}},
    }
    (out / "perf-b128.json").write_text(json.dumps(bench))
    rows = {"skin": 0.1, "pants": 0.2, "tops": 0.0, "hair": 0.05, "action": 0.3}
    evaluation = {
        "split": "test",
        "table1": {k: {"disagreement": v} for k, v in rows.items()},
        "later_work": {"action_acc": 0.75},
    }
    (out / "eval" / "sprites_eval.json").write_text(json.dumps(evaluation))
    assert _time_to_result().main([str(out)]) == 0
    record = json.loads((out / "time_to_result.json").read_text())
    assert record["fraction_of_step"] == pytest.approx(0.5)
    assert record["epochs"] == 1 and record["steps"] == 5
    assert record["table1"] == rows and record["acc"] == 0.75
    table = (out / "time_to_result.md").read_text().splitlines()
    assert table[2].split(" | ")[2] == "50.0%"
    assert "30.00" in table[2] and "75.00" in table[2]


def test_time_to_result_reports_what_is_missing(tmp_path):
    tool = _time_to_result()
    record = tool.collect(tmp_path)  # an empty OUT: a run that stopped before anything
    assert record["step_seq_per_s"] is None and record["table1"] is None
    assert tool.markdown(record).splitlines()[2].startswith("| — | — | — | — |")
    assert tool.main([str(tmp_path / "nope")]) == 2
