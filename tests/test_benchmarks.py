"""The benchmark script runs end to end at tiny size and reports what it promises."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from dsvae.config import load_config
from dsvae.model import build_model

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _module(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def test_naive_step_has_the_same_loss_as_the_model():
    """The naive LSTMCell loop is the same maths as the fused prior."""
    naive = _module("naive")
    torch.manual_seed(0)
    config = load_config(
        "quickstart",
        [
            "model.frame_shape=[1,16,16]",
            "model.frames.channels=[4,4]",
            "model.frames.strides=[2,2]",
            "model.hidden_dim=16",
        ],
    )
    model = build_model(config.model)
    step = naive.NaiveStep(model, 1e-3, torch.device("cpu"))
    batch = (torch.rand(3, 5, 16, 16, 1) > 0.8).to(torch.uint8).numpy() * 255
    x = naive.host_frames(batch)
    torch.manual_seed(1)
    ours = model.loss(model(x))
    torch.manual_seed(1)
    theirs = step.loss(x)
    torch.testing.assert_close(theirs, ours, rtol=1e-5, atol=1e-3)


def test_benchmark_report(tmp_path):
    bench = _module("bench")
    report = bench.main(
        [
            "--configs",
            "quickstart",
            "--tiny",
            "--batch",
            "4",
            "--steps",
            "1",
            "--rounds",
            "2",
            "--warmup",
            "1",
            "--infer-sequences",
            "8",
            "--infer-batch",
            "4",
            "--fold-bn",
            "--json",
            str(tmp_path / "r.json"),
            "--markdown",
            str(tmp_path / "r.md"),
        ]
    )
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["machine"]["torch"] == torch.__version__
    assert saved["machine"]["threads"] >= 1
    training = report["configs"]["quickstart"]["training"]
    assert training["naive_seq_per_s"] > 0 and training["ours_seq_per_s"] > 0
    assert training["ratio"] == pytest.approx(
        training["ours_seq_per_s"] / training["naive_seq_per_s"]
    )
    assert len(training["rounds"]["ours"]) == 2
    inference = report["configs"]["quickstart"]["inference"]
    assert set(inference) == {"swap", "prior_sampling"}
    swap = inference["swap"]
    assert swap["folded_bn_over_ours"] == pytest.approx(
        swap["folded_bn_seq_per_s"] / swap["ours_seq_per_s"]
    )
    assert [len(swap["seconds"][k]) for k in ("naive", "ours", "folded_bn")] == [2, 2, 2]
    table = (tmp_path / "r.md").read_text()
    assert "| quickstart | training step (" in table
    assert "| quickstart | swap, folded BN (8 seq; " in table
    assert training["gflop_per_sequence"] > 0 and training["fraction_of_peak"] is None


def test_profile_step_shares():
    profile = _module("profile_step")
    shares = profile.main(
        ["--config", "quickstart", "--frame-shape", "[1,16,16]", "--batch", "2", "--length", "3",
         "--set", "model.frames.channels=[4,4]", "--set", "model.frames.strides=[2,2]"]
    )  # fmt: skip
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["convolution"] > 0 and shares["LSTM"] > 0
