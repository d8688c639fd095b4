"""Lightning DDP on CPU (gloo): two processes train like one with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from dsvae.data import SequenceDataset, make_bouncing_ball_dataset, prepare_frames
from dsvae.model import build_model, load_model
from tiny import TINY_MODEL

TINY = [
    *TINY_MODEL,
    "model.frames.norm=none",  # per-process batch statistics would differ
    "train.lr=0.003",
    "train.progress_bar=false",
    "train.max_epochs=4",
    "train.val_fraction=0.125",
    "train.accelerator=cpu",
    "train.threads=1",
]


def _train(data, out, *settings):
    sets = [arg for s in (*TINY, *settings) for arg in ("--set", s)]
    cmd = [sys.executable, "-m", "dsvae.cli", "train", "quickstart", "--data", str(data)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*cmd, "--out", str(out), *sets], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((out / "summary.json").read_text())


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    """`strategy: ddp` on 2 CPU processes x 8 sequences against 1 process x 16."""
    data = make_bouncing_ball_dataset(tmp_path / "d", n=64, length=6, size=16, seed=3)
    one = _train(data, tmp_path / "one", "train.batch_size=16")
    two = _train(
        data, tmp_path / "two", "train.batch_size=8", "train.devices=2", "train.strategy=ddp"
    )
    # the same number of optimiser steps: 56 training sequences / (2 processes x 8)
    assert one["global_step"] == two["global_step"] == 4 * 4
    x = prepare_frames(torch.from_numpy(np.array(SequenceDataset(data).frames[:16])))

    def elbo(model) -> float:
        with torch.no_grad():
            return float(model.eval()(x, generator=torch.Generator().manual_seed(1)).terms["elbo"])

    a, b = elbo(load_model(tmp_path / "two")), elbo(load_model(tmp_path / "one"))
    torch.manual_seed(0)
    untrained = elbo(build_model(load_model(tmp_path / "one").config))
    # the same sequences per step and averaged gradients; only the sampling noise differs,
    # so the two runs land close together compared with how far training moved them
    assert abs(a - b) < 0.1 * abs(b - untrained), (a, b, untrained)
    rows = (tmp_path / "two" / "metrics.csv").read_text().splitlines()
    assert len(rows) > 1  # one writer: rank 0
