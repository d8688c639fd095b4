"""Crash safety: SIGKILL at random moments and mid-checkpoint, then --resume; nothing lost."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dsvae.config import load_config
from dsvae.data import make_bouncing_ball_dataset
from dsvae.train import train
from dsvae.train.csv_log import RunCSVLogger
from dsvae.train.run import resume_checkpoint
from tiny import tiny_overrides

ROOT = Path(__file__).resolve().parents[1]
TINY = tiny_overrides(
    "train.batch_size=8", "train.progress_bar=false", "train.checkpoint_every_n_epochs=1"
)


@pytest.mark.slow
def test_five_random_kills_lose_nothing(tmp_path):
    """scripts/crash_test.py: 5 SIGKILLs (at least 2 mid-write), then the run finishes equal
    to an uninterrupted one; every checkpoint loads; resumes keep step and optimiser."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "crash_test.py"), "--out", str(tmp_path / "w"),
         "--kills", "5", "--seed", "0"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    report = json.loads((tmp_path / "w" / "report.json").read_text())
    kills = report["kills"]
    assert len(kills) == 5 and sum(k["during_write"] for k in kills) >= 2
    assert all(k["all_load"] and k["optimizer_in_step"] for k in kills)
    assert report["resumed_from_last_checkpoint"] and report["resumes_checked"] >= 3
    assert report["model"]["max_abs_diff"] <= 1e-5 and report["same_logged_steps"]


def test_a_kill_mid_append_leaves_a_partial_metrics_row_that_resume_drops(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("step,epoch,train/elbo\n1,0,-5.0\n3,0,-4.0\n5,1,-3.5\n7,1,-3")  # cut off
    logger = RunCSVLogger(tmp_path, ("train/elbo",))
    logger.truncate_after(5)
    lines = path.read_text().splitlines()
    assert lines == ["step,epoch,train/elbo", "1,0,-5.0", "3,0,-4.0", "5,1,-3.5"]
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]  # rewritten atomically


def test_resume_takes_the_newest_complete_checkpoint(tmp_path):
    """A kill between writing epochNNNN.ckpt and last.ckpt leaves last.ckpt one epoch older:
    --resume continues from the newer file, and stale temporary files are removed."""
    data = make_bouncing_ball_dataset(tmp_path / "d", n=20, length=4, size=16, seed=0)
    config = lambda epochs: load_config("quickstart", [*TINY, f"train.max_epochs={epochs}"])  # noqa: E731
    run = tmp_path / "run"
    train(config(2), data, run)
    checkpoints = run / "checkpoints"
    shutil.copy(checkpoints / "epoch0000.ckpt", checkpoints / "last.ckpt")  # as if killed
    (checkpoints / ".last.ckpt.abc123.tmp").write_bytes(b"half a checkpoint")
    assert resume_checkpoint(run) == checkpoints / "epoch0001.ckpt"
    result = train(config(3), data, run, resume=True)
    assert result.global_step == 3 * 3  # one more epoch of 3 steps, not two
    assert not list(checkpoints.glob(".*.tmp"))
