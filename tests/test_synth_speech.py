"""The synthetic many-voice speech set (espeak-ng): labels, split, seed, front end, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("soundfile", reason="speech needs the audio extra: pip install 'dsvae[audio]'")
pytest.importorskip("librosa", reason="speech needs the audio extra: pip install 'dsvae[audio]'")

from dsvae.data import SequenceDataset, speech
from dsvae.data import synth_speech as sy
from dsvae.errors import DataError
from speech_audio import fake_fsdd

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="needs espeak-ng: apt-get install espeak-ng"
)
TINY = [
    "--voices", "m1,m3,f1,f3",
    "--male-pitches", "75",
    "--female-pitches", "70",
    "--speeds", "160",
    "--words", "one,two,yes",
    "--takes", "2",
]  # fmt: skip


def dsvae(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dsvae.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})},
    )


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    """4 voices (m1, m3, f1, f3 at one pitch and speed) x 3 words x 2 takes, via the CLI."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng: apt-get install espeak-ng")
    out = tmp_path_factory.mktemp("synth") / "synth"
    proc = dsvae("data", "synth-speech", "--out", out, *TINY)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "4 voices" in proc.stdout and f"wrote {out / 'wav'}" in proc.stdout
    return out


@needs_espeak
def test_labels_hold_the_settings_and_the_measured_f0(synth):
    parts = [SequenceDataset(synth / s) for s in speech.SPLITS]
    meta = parts[0].meta["synth"]
    assert meta["voices"] == ["f1-p70-s160", "f3-p70-s160", "m1-p75-s160", "m3-p75-s160"]
    assert meta["words"] == ["one", "two", "yes"]
    for ds in parts:
        lab = ds.labels
        assert ds.frame_shape == (200,) and ds.length == 20
        female = lab["gender"] == 1
        assert set(lab["pitch"][female]) == {70} and set(lab["pitch"][~female]) == {75}
        assert np.abs(lab["pitch_used"] - lab["pitch"]).max() <= 4
        assert np.abs(lab["speed_used"] - 160).max() <= 10
        # pyin's f0 in the typical male and female ranges for these settings (NaN: pyin
        # found no voiced frame, which happens on a few short male words)
        for mine, lo, hi in ((~female, 85, 180), (female, 165, 255)):
            f0 = lab["f0"][mine]
            known = f0[np.isfinite(f0)]
            assert known.size >= f0.size / 2 and np.all((known > lo) & (known < hi)), f0
        words = np.asarray(meta["words"])[lab["word"]]
        assert set(lab["digit"][words == "one"]) <= {1} and set(lab["digit"][words == "yes"]) <= {
            -1
        }
        assert set(lab["digit"][words == "two"]) <= {2}
        assert np.array_equal(lab["voice"], lab["speaker"])  # both index meta's voices
        voices = np.asarray(meta["voices"])[lab["voice"]]
        variants = np.asarray(meta["variants"])[lab["variant"]]
        assert all(v.startswith(f"{w}-") for v, w in zip(voices, variants, strict=True))
    assert parts[0].labels["f0"].dtype == np.float64


@needs_espeak
def test_split_is_by_voice(synth):
    train, seen, unseen = (SequenceDataset(synth / s) for s in speech.SPLITS)
    held = set(train.meta["synth"]["unseen_variants"])
    assert len(held) == 2 and {v[0] for v in held} == {"m", "f"}  # one variant of each gender
    voices = lambda ds: set(ds.meta["split_speakers"])  # noqa: E731
    assert voices(unseen) == {v for v in train.meta["synth"]["voices"] if v.split("-")[0] in held}
    assert voices(train) == voices(seen) and not voices(train) & voices(unseen)
    # every take of a held-out voice is test-unseen: 3 words x 2 takes per voice
    assert len(unseen.meta["utterances"]) == 2 * 3 * 2
    assert len(train.meta["utterances"]) + len(seen.meta["utterances"]) == 2 * 3 * 2
    assert len(seen.meta["utterances"]) >= 2  # at least one take of each seen voice


@needs_espeak
def test_front_end_is_that_of_data_speech(synth, tmp_path):
    from dsvae.audio import SpectrogramConfig, log_spectrogram, read_audio, segment

    train = SequenceDataset(synth / "train")
    cfg, stats = speech.spectrogram_settings(train.meta)
    assert cfg == SpectrogramConfig.for_rate(8000)
    name = train.meta["utterances"][0]
    audio, rate = read_audio(synth / "wav" / (name.split("/", 1)[1] + ".wav"))
    assert rate == 8000
    frames = stats.normalise(segment(log_spectrogram(audio, cfg), cfg).frames)
    mine = train.labels["utterance"] == 0
    np.testing.assert_allclose(np.asarray(train.frames)[mine], frames, atol=1e-5)
    # the WAVs mix with real speech through `dsvae data speech --synth`
    from dsvae.cli import main

    fsdd = fake_fsdd(tmp_path / "fsdd", speakers=("bob", "carol"), digits=(1, 2), takes=6)
    code = main(
        ["data", "speech", "--fsdd", str(fsdd), "--unseen", "carol", "--synth", str(synth)]
        + ["--out", str(tmp_path / "mixed")]
    )
    assert code == 0
    mixed = SequenceDataset(tmp_path / "mixed" / "train")
    assert mixed.frame_shape == train.frame_shape
    assert set(mixed.meta["split_speakers"]) == {"bob", *train.meta["split_speakers"]}
    real = np.asarray(mixed.meta["speakers"])[mixed.labels["speaker"]] == "bob"
    assert np.isnan(mixed.labels["f0"][real]).all() and set(mixed.labels["word"][real]) == {-1}
    known = lambda f0: set(f0[np.isfinite(f0)].tolist())  # noqa: E731
    assert known(mixed.labels["f0"][~real]) == known(train.labels["f0"])  # the same split
    unseen = SequenceDataset(tmp_path / "mixed" / "test-unseen")
    assert "carol" in unseen.meta["split_speakers"] and len(unseen.meta["split_speakers"]) == 3


@needs_espeak
def test_same_seed_same_data_other_seed_other_jitter(tmp_path):
    spec = dict(male_variants=("m2",), female_variants=("f2",), words=("one",), takes=2)
    spec.update(male_pitches=(70,), female_pitches=(60,), speeds=(150,))
    a = sy.build_synth_speech(sy.SynthSpec(**spec, seed=3), tmp_path / "a")
    b = sy.build_synth_speech(sy.SynthSpec(**spec, seed=3), tmp_path / "b", jobs=2)
    c = sy.build_synth_speech(sy.SynthSpec(**spec, seed=4), tmp_path / "c")
    da, db, dc = (SequenceDataset(x["train"]) for x in (a, b, c))
    assert np.array_equal(np.asarray(da.frames), np.asarray(db.frames))
    for key in da.labels:
        np.testing.assert_array_equal(da.labels[key], db.labels[key])
    assert (tmp_path / "a/wav/utterances.csv").read_text() == (
        tmp_path / "b/wav/utterances.csv"
    ).read_text()
    used = lambda d: [t.pitch_used for t in sy.plan_takes(sy.SynthSpec(**spec, seed=d))]  # noqa: E731
    assert used(3) != used(4)
    assert not np.array_equal(da.labels["pitch_used"], dc.labels["pitch_used"])


def _nothing_written(out: Path) -> bool:
    return not out.exists() and not [p for p in out.parent.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--voices", "m1,nosuchvoice"], "no voice variant 'nosuchvoice'"),
        (["--words", ","], "word list is empty"),
        (["--male-pitches", "120"], "--male-pitches [120] cannot be used"),
        (["--female-pitches", "2"], "must be in 4..95"),
        (["--speeds", "40"], "--speeds [40] cannot be used"),
        (["--unseen", "m1,m2,m3,m4,m5,m6,m7,f1,f2,f3,f4,f5"], "every variant is held out"),
    ],
)
@needs_espeak
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, args, message):
    out = tmp_path / "out"
    proc = dsvae("data", "synth-speech", "--out", out, *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert _nothing_written(out)


def test_missing_espeak_says_what_to_install(tmp_path, monkeypatch):
    out = tmp_path / "out"
    proc = dsvae("data", "synth-speech", "--out", out, env={"PATH": str(tmp_path)})
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "apt-get install espeak-ng" in proc.stderr
    assert _nothing_written(out)
    monkeypatch.setattr(sy, "ESPEAK", "no-such-espeak-ng")
    with pytest.raises(DataError, match="apt-get install espeak-ng"):
        sy.build_synth_speech(sy.SynthSpec(), out)
    assert _nothing_written(out)


def test_cli_help_names_the_options():
    proc = dsvae("data", "synth-speech", "--help")
    assert proc.returncode == 0
    for word in ("--voices", "--male-pitches", "--female-pitches", "--words", "--seed"):
        assert word in proc.stdout
    assert "apt-get install espeak-ng" in proc.stdout and "dsvae data speech" in proc.stdout


@needs_espeak
def test_conversion_pairs_span_the_f0_range(synth, tmp_path):
    import torch

    from conftest import make_model_config
    from dsvae.cli import main
    from dsvae.model import DSVAE, save_model

    torch.manual_seed(0)
    model = DSVAE(make_model_config(kind="mlp", likelihood="gaussian", frame_shape=[200]))
    save_model(model, tmp_path / "run" / "model")
    out = tmp_path / "conv"
    args = ["evaluate", "conversion", str(tmp_path / "run"), "--data", str(synth)]
    assert main([*args, "--split", "test-unseen", "--iterations", "3", "--out", str(out)]) == 0
    report = json.loads((out / "conversion_eval.json").read_text())
    unseen = SequenceDataset(synth / "test-unseen")
    f0 = dict(zip(unseen.meta["utterances"], unseen.labels["f0"][np.unique(
        unseen.labels["utterance"], return_index=True)[1]], strict=True))  # fmt: skip
    pairs = report["pairs"]
    # two voices, one male and one female: each converts its 2 x 2 digit takes to the other
    assert {p["direction"] for p in pairs} == {"male->female", "female->male"} and len(pairs) == 8
    for p in pairs:
        assert p["f0_target"] == pytest.approx(f0[p["target"]])  # the target's known f0
        assert p["source"].split("/")[1] != p["target"].split("/")[1]  # another voice
        assert p["source"].rsplit("/")[-1][:3] != p["target"].rsplit("/")[-1][:3]  # another word
    assert report["summary"]["all"]["pairs"] == 8
    for name in ("conversion_eval.md", "figure6.png", "male_to_female.wav", "female_to_male.wav"):
        assert (out / name).is_file()
    assert main([*args, "--fsdd", str(tmp_path), "--out", str(out)]) == 2  # --allison missing
