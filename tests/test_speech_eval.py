"""Speaker verification: the EER on known answers and against scikit-learn, and the Table 2 protocol."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from dsvae.eval import equal_error_rate
from dsvae.eval.verification import cosine_scores, trial_labels


def test_eer_known_answers():
    same = np.array([True, True, False, False])
    assert equal_error_rate(np.array([0.9, 0.8, 0.2, 0.1]), same) == 0.0  # perfectly separated
    assert equal_error_rate(np.full(4, 0.3), same) == 0.5  # no information
    assert equal_error_rate(np.array([0.1, 0.2, 0.8, 0.9]), same) == 1.0  # exactly wrong
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    truth = np.array([True, True, False, True, False, False])
    assert equal_error_rate(scores, truth) == pytest.approx(1 / 3)  # one of three wrong each way
    with pytest.raises(ValueError, match="same-speaker and different-speaker"):
        equal_error_rate(scores, np.ones(6, bool))


def test_eer_agrees_with_scikit_learn_roc():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for n, shift, decimals in [(400, 1.0, 6), (1000, 0.3, 1), (50, 2.0, 6)]:
        same = rng.random(n) < 0.3
        scores = np.round(rng.normal(size=n) + shift * same, decimals)  # decimals=1 makes ties
        fpr, tpr, _ = metrics.roc_curve(same, scores, drop_intermediate=False)
        fnr = 1 - tpr
        k = int(np.argmax(fnr <= fpr))
        t = (fnr[k - 1] - fpr[k - 1]) / ((fnr[k - 1] - fpr[k - 1]) - (fnr[k] - fpr[k]))
        expected = fpr[k - 1] + t * (fpr[k] - fpr[k - 1])
        assert equal_error_rate(scores, same) == pytest.approx(expected, abs=1e-12)
        # and close to the usual nearest-point reading
        i = np.nanargmin(np.abs(fnr - fpr))
        assert abs(equal_error_rate(scores, same) - (fnr[i] + fpr[i]) / 2) < 2 / min(
            same.sum(), (~same).sum()
        )


def test_cosine_scores_and_trials():
    e = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [0.0, 0.0]])
    scores, i, j = cosine_scores(e)
    assert list(zip(i.tolist(), j.tolist(), strict=True))[:3] == [(0, 1), (0, 2), (0, 3)]
    np.testing.assert_allclose(scores, [1, 0, 0, 0, 0, 0])
    assert trial_labels(np.array([5, 5, 6, 6]), i, j).tolist() == [
        True,
        False,
        False,
        False,
        False,
        True,
    ]


@pytest.fixture(scope="module")
def speech_set(tmp_path_factory):
    pytest.importorskip(
        "soundfile", reason="speech needs the audio extra: pip install 'dsvae[audio]'"
    )
    from dsvae.data import speech
    from speech_audio import fake_fsdd

    tmp = tmp_path_factory.mktemp("speech")
    root = fake_fsdd(
        tmp / "fsdd", speakers=("alice", "bob", "carol", "dave"), digits=(0, 1), takes=6
    )
    speech.build_speech(speech.fsdd_utterances(root, unseen=["carol", "dave"]), tmp / "data")
    return tmp


@pytest.fixture(scope="module")
def tiny_run(speech_set):
    from conftest import make_model_config
    from dsvae.model import DSVAE, save_model

    torch.manual_seed(0)
    model = DSVAE(make_model_config("full", kind="mlp", likelihood="gaussian", frame_shape=[200]))
    return save_model(model, speech_set / "tiny-full" / "model").parent


def test_protocol_rows_and_reference_on_tones(speech_set, tiny_run, tmp_path):
    from dsvae.eval.speech import evaluate_speech

    report = evaluate_speech([tiny_run], speech_set / "data", tmp_path / "eval")
    seen, unseen = report["conditions"]["test-seen"], report["conditions"]["test-unseen"]
    # test-seen: takes 0-4 of 2 digits of alice and bob; test-unseen: all 12 of carol and dave
    assert (seen["utterances"], seen["speakers"], seen["trials"]) == (20, 2, 190)
    assert seen["same_speaker_trials"] == 2 * 45
    assert (unseen["utterances"], unseen["trials"]) == (24, 276)
    rows = {(r["model"], r["feature"]): r for r in unseen["rows"]}
    assert set(rows) == {
        ("reference", "log-spectrum"),
        ("reference", "mfcc"),
        ("tiny-full", "mu_f"),
        ("tiny-full", "mu_z"),
    }
    # each speaker is a tone of its own pitch: the mean spectrum tells them apart
    assert rows[("reference", "log-spectrum")]["eer"] == 0.0
    assert rows[("tiny-full", "mu_f")]["dim"] == 5 and rows[("tiny-full", "mu_z")]["dim"] == 3
    assert all(0 <= r["eer"] <= 1 for r in rows.values())
    saved = json.loads((tmp_path / "eval" / "speech_eval.json").read_text())
    assert saved["conditions"]["test-seen"]["rows"][0]["eer"] == seen["rows"][0]["eer"]
    md = (tmp_path / "eval" / "speech_eval.md").read_text()
    assert "## test-unseen" in md and "| tiny-full | full | μ_f | 5 |" in md


def test_mu_f_is_the_mean_over_segments(speech_set, tiny_run):
    from dsvae import ops
    from dsvae.data import SequenceDataset
    from dsvae.eval.speech import model_embeddings
    from dsvae.model import load_model

    data = SequenceDataset(speech_set / "data" / "test-seen")
    model = load_model(tiny_run)
    emb = model_embeddings(model, data, batch_size=7)
    utt = data.labels["utterance"]
    x = torch.from_numpy(np.array(data.frames[utt == 3]))
    enc = ops.encode(model, x)
    np.testing.assert_allclose(emb["mu_f"][3], enc.f.mean(0).double().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        emb["mu_z"][3], enc.z.mean((0, 1)).double().numpy(), rtol=1e-5, atol=1e-6
    )


def test_cli_evaluate_speech(speech_set, tiny_run, tmp_path, capsys):
    from dsvae.cli import main

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "dsvae.cli", "evaluate", "speech", str(tiny_run)]
    done = subprocess.run(
        [*cmd, "--data", str(speech_set / "data"), "--out", str(tmp_path / "e")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "mean log spectrum | 200 | 0.00%" in done.stdout
    assert (tmp_path / "e" / "speech_eval.json").is_file()
    data = ["--data", str(speech_set / "data"), "--out", str(tmp_path / "r")]
    assert main(["evaluate", "speech", *data]) == 0  # no runs: the reference rows alone
    assert "| reference | - | mean MFCC | 19 |" in capsys.readouterr().out
    assert main([*cmd[3:], "--data", str(tmp_path), "--out", str(tmp_path / "f")]) == 2
    assert "no test-seen/ or test-unseen/" in capsys.readouterr().err


@pytest.mark.parametrize("dim", [16, 64])
@pytest.mark.parametrize("q", ["factorised", "full"])
def test_shipped_speech_configs_are_table_2_rows(dim, q):
    from dsvae.config import load_config

    cfg = load_config(f"speech-f{dim}-{q}").model
    assert (cfg.f_dim, cfg.z_dim, cfg.posterior) == (dim, dim, q)
    assert (cfg.frames.kind, cfg.likelihood.kind, cfg.likelihood.mean_activation) == (
        "mlp",
        "gaussian",
        "none",
    )


def test_a_shrunk_speech_config_trains_on_a_speech_set(speech_set, tmp_path):
    from dsvae.config import load_config
    from dsvae.eval.speech import evaluate_speech
    from dsvae.train import train

    overrides = [
        "model.hidden_dim=8",
        "model.frames.hidden=[16]",
        "model.frames.feature_dim=16",
        "train.max_steps=3",
        "train.batch_size=8",
        "train.progress_bar=false",
        "train.accelerator=cpu",
    ]
    config = load_config("speech-f16-full", overrides)
    result = train(config, speech_set / "data" / "train", tmp_path / "run")
    assert result.global_step == 3 and result.model.frame_shape == (200,)
    report = evaluate_speech([tmp_path / "run"], speech_set / "data", tmp_path / "eval")
    assert [r["feature"] for r in report["conditions"]["test-seen"]["rows"]][2:] == ["mu_f", "mu_z"]
