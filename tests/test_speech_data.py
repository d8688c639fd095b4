"""Speech data sets from generated audio laid out like FSDD, Allison, TIMIT and a plain folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("soundfile", reason="speech needs the audio extra: pip install 'dsvae[audio]'")

from dsvae.data import SequenceDataset, speech
from dsvae.errors import DataError
from speech_audio import PITCH, fake_fsdd, tone, write

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def test_fsdd_build_splits_labels_and_normalisation(tmp_path):
    root = fake_fsdd(tmp_path / "fsdd")
    utts = speech.fsdd_utterances(root, unseen=["carol"])
    out = speech.build_speech(utts, tmp_path / "speech")
    train, seen, unseen = (SequenceDataset(out[s]) for s in speech.SPLITS)
    assert train.frame_shape == (200,) and train.length == 20
    names = train.meta["speakers"]
    assert names == ["alice", "bob", "carol"]
    # official split: takes 0-4 are test, 5-6 train; carol is held out entirely
    assert len(train.meta["utterances"]) == 2 * 2 * 2 and len(seen.meta["utterances"]) == 2 * 2 * 5
    assert set(unseen.labels["speaker"]) == {names.index("carol")}
    assert set(train.labels["speaker"]) == {0, 1} and set(train.labels["digit"]) == {0, 1}
    assert seen.meta["utterances"][0].startswith("fsdd/0_alice_")
    # takes 5 and 6 last 0.40 and 0.43 s: 41 and 44 frames, three segments each, none padded
    assert len(train) == 8 * 3 and train.labels["padded"].max() == 0
    assert train.labels["segment"].tolist()[:3] == [0, 1, 2]
    # per-bin statistics come from the training frames: they are now mean 0, std 1
    x = np.asarray(train.frames).reshape(-1, 200)
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-3)
    spec = train.meta["spectrogram"]
    varied = np.asarray(spec["std"]) > 2e-3  # bins that are not constant in the training frames
    assert varied.sum() > 150
    np.testing.assert_allclose(x.std(0)[varied], 1, atol=1e-2)
    assert (spec["sample_rate"], spec["hop_length"], spec["win_length"]) == (8000, 80, 200)
    assert len(spec["mean"]) == 200 and "CC BY-SA 4.0" in train.meta["licence"]


def test_short_utterances_are_padded_or_dropped(tmp_path):
    root = tmp_path / "voices"
    write(root / "alice_long.wav", tone(PITCH["alice"], 0.3))
    write(root / "alice_short.wav", tone(PITCH["alice"], 0.1))  # 11 frames < 20
    write(root / "bob_a.wav", tone(PITCH["bob"], 0.3))
    utts, skipped = speech.folder_utterances(root, speaker_regex=r"^([a-z]+)_", holdout=0)
    assert skipped == 0
    padded = SequenceDataset(speech.build_speech(utts, tmp_path / "pad")["train"])
    assert sorted(padded.labels["padded"].tolist()) == [0, 0, 0, 0, 9]
    dropped = SequenceDataset(speech.build_speech(utts, tmp_path / "drop", short="drop")["train"])
    assert len(dropped) == 4 and dropped.meta["dropped_utterances"] == 1


def _timit(root: Path, lower: bool = False) -> Path:
    def name(text: str) -> str:
        return text.lower() if lower else text

    layout = {
        "TRAIN": {"DR1": ["FAAA0", "MBBB0"], "DR2": ["MCCC0"]},
        "TEST": {"DR1": ["MDAB0", "FELC0", "MZZZ9"]},  # MZZZ9 is not in the core test set
    }
    for part, regions in layout.items():
        for region, speakers in regions.items():
            for i, spk in enumerate(speakers):
                pitch = 110.0 + 40 * i + (60 if spk.startswith("F") else 0)
                for utt in ("SA1", "SA2", "SI1", "SX1", "SX2", "SX3", "SI2", "SX4", "SX5", "SX6"):
                    path = root / name(part) / name(region) / name(spk) / name(f"{utt}.WAV")
                    write(path, tone(pitch, 0.25, rate=16000), rate=16000, fmt="NIST")
    return root


@pytest.mark.parametrize("lower", [False, True])
def test_timit_layout(tmp_path, lower):
    utts = speech.timit_utterances(_timit(tmp_path / "TIMIT", lower), holdout=0.125)
    assert not any("/SA" in u.name for u in utts)  # SA sentences dropped
    by_split = {s: [u for u in utts if u.split == s] for s in speech.SPLITS}
    assert {u.speaker for u in by_split["train"]} == {"FAAA0", "MBBB0", "MCCC0"}
    assert len(by_split["train"]) == 3 * 7 and len(by_split["test-seen"]) == 3  # one of eight each
    assert {u.speaker for u in by_split["test-unseen"]} == {"MDAB0", "FELC0"}
    assert {u.gender for u in utts if u.speaker == "FELC0"} == {"female"}
    out = speech.build_speech(utts, tmp_path / "timit")
    train = SequenceDataset(out["train"])
    assert train.meta["spectrogram"]["hop_length"] == 160 and train.frame_shape == (200,)
    assert "LDC" in train.meta["licence"]


def test_timit_without_core_speakers_is_refused(tmp_path):
    root = tmp_path / "TIMIT"
    write(root / "TRAIN" / "DR1" / "FAAA0" / "SX1.WAV", tone(200.0, 0.25))
    write(root / "TEST" / "DR1" / "MZZZ9" / "SX1.WAV", tone(200.0, 0.25))
    with pytest.raises(DataError, match="core test speakers"):
        speech.timit_utterances(root)


def test_folder_rules_regex_csv_and_unseen(tmp_path):
    root = tmp_path / "voices"
    for s in ("alice", "bob", "dave"):
        for k in range(10):
            write(root / s / f"{s}-{k % 3}-{k}.wav", tone(PITCH[s], 0.25, vowel=k % 3))
    (root / "notes.txt").write_text("ignored")
    write(root / "README.wav", tone(300.0, 0.25))  # matched by no rule below: skipped
    utts, skipped = speech.folder_utterances(
        root, speaker_regex=r"^(?P<speaker>[a-z]+)/[a-z]+-(?P<digit>\d)-", unseen=["dave"], seed=1
    )
    assert skipped == 1
    assert {u.split for u in utts if u.speaker == "dave"} == {"test-unseen"}
    assert sum(u.split == "test-seen" for u in utts) == 2  # 10% of each of alice and bob
    assert {u.digit for u in utts} == {0, 1, 2}
    table = tmp_path / "speakers.csv"
    table.write_text("file,speaker,digit\nalice/alice-0-0.wav,A,0\nbob/bob-1-1.wav,B,\n")
    utts, skipped = speech.folder_utterances(root, speaker_csv=table, holdout=0)
    assert [(u.speaker, u.digit) for u in utts] == [("A", 0), ("B", -1)] and skipped == 29
    with pytest.raises(DataError, match="matches none of the 31 WAV files"):
        speech.folder_utterances(root, speaker_regex=r"^zed_(\w+)")
    with pytest.raises(DataError, match="not in"):
        speech.folder_utterances(root, speaker_regex=r"^([a-z]+)/", unseen=["zed"])


def test_a_bad_file_leaves_nothing_behind(tmp_path):
    root = fake_fsdd(tmp_path / "fsdd", speakers=("alice", "bob"), digits=(0,))
    write(root / "recordings" / "0_bob_3.wav", tone(110.0, 0.3, rate=16000), rate=16000)
    utts = speech.fsdd_utterances(root, unseen=[])
    with pytest.raises(DataError, match="0_bob_3.wav is sampled at 16000 Hz"):
        speech.build_speech(utts, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fsdd"]
    out = speech.build_speech(utts, tmp_path / "out", resample=True)
    assert SequenceDataset(out["train"]).meta["spectrogram"]["sample_rate"] == 8000


def test_cli_builds_and_reports_bad_rules(tmp_path, capsys):
    from dsvae.cli import main

    root = fake_fsdd(tmp_path / "fsdd", speakers=("alice", "bob"), digits=(0,))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "dsvae.cli",
        "data",
        "speech",
        "--fsdd",
        str(root),
        "--unseen",
        "bob",
        "--dynamic-range",
        "40",
    ]
    done = subprocess.run(
        [*cmd, "--out", str(tmp_path / "d")], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "utterances: train 2, test-seen 5, test-unseen 7" in done.stdout
    train = SequenceDataset(tmp_path / "d" / "train")
    assert train.meta["split_speakers"] == ["alice"]
    assert train.meta["spectrogram"]["dynamic_range_db"] == 40
    # each utterance is measured from its loudest bin, floored 40 dB (4.6 nats) below it
    spec = np.asarray(train.frames) * train.meta["spectrogram"]["std"]
    spec = spec + np.asarray(train.meta["spectrogram"]["mean"])
    for u in set(train.labels["utterance"].tolist()):
        one = spec[train.labels["utterance"] == u]
        assert one.max() == pytest.approx(0, abs=1e-3)
        assert one.min() == pytest.approx(-40 * np.log(10) / 20, abs=1e-3)
    bad = ["data", "speech", "--folder", str(root), "--speaker-regex", "^nobody_(x)"]
    assert main([*bad, "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "matches none of the 14 WAV files" in err
    assert not (tmp_path / "e").exists()


@pytest.mark.skipif(
    not (SHARED / "fsdd" / "recordings").is_dir(), reason="FSDD is not in ../shared/data/fsdd"
)
def test_real_fsdd_and_allison_listing():
    fsdd = speech.fsdd_utterances(SHARED / "fsdd")
    assert len(fsdd) == 3000
    counts = {s: sum(u.split == s for u in fsdd) for s in speech.SPLITS}
    assert counts == {"train": 4 * 450, "test-seen": 4 * 50, "test-unseen": 2 * 500}
    if (SHARED / "allison" / "digits").is_dir():
        allison = speech.allison_utterances(SHARED / "allison")
        assert len(allison) == 558 and sorted(u.digit for u in allison if u.digit >= 0) == list(
            range(10)
        )


def test_speaker_levels_find_each_recording_background(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "voices"
    for name, noise in (("alice", 1e-3), ("bob", 1e-2)):  # bob's room is 20 dB noisier
        for k in range(3):
            x = np.concatenate([np.zeros(2000), tone(PITCH[name], 0.4), np.zeros(2000)])
            write(root / f"{name}_{k}.wav", x + noise * rng.standard_normal(len(x)))
    utts, _ = speech.folder_utterances(root, speaker_regex=r"^([a-z]+)_", holdout=0)
    speech.build_speech(utts, tmp_path / "d")
    rows = {r["speaker"]: r for r in speech.speaker_levels(tmp_path / "d" / "train")}
    assert rows["alice"]["utterances"] == rows["bob"]["utterances"] == 3
    gap = rows["bob"]["background"] - rows["alice"]["background"]
    assert gap == pytest.approx(np.log(10), abs=0.3)  # 20 dB of magnitude = ln 10 nats
    assert rows["alice"]["span"] - rows["bob"]["span"] == pytest.approx(np.log(10), abs=0.3)
    script = Path(__file__).resolve().parents[1] / "scripts" / "speech_levels.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "d" / "train")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "| alice | 3 |" in done.stdout and "| bob | 3 |" in done.stdout
