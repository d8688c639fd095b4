"""Voice conversion: swapping f, Griffin-Lim back to WAV at the file's rate, the figure, pitch."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

sf = pytest.importorskip(
    "soundfile", reason="speech needs the audio extra: pip install 'dsvae[audio]'"
)

from dsvae.cli import main  # noqa: E402
from speech_audio import PITCH, fake_fsdd, tone, write  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model and the speech set it belongs to (weights random: plumbing only)."""
    from conftest import make_model_config
    from dsvae.data import speech
    from dsvae.model import DSVAE, save_model

    tmp = tmp_path_factory.mktemp("conv")
    root = fake_fsdd(tmp / "fsdd", speakers=("alice", "bob"), digits=(0,), takes=6)
    speech.build_speech(speech.fsdd_utterances(root, unseen=[]), tmp / "data")
    torch.manual_seed(0)
    model = DSVAE(
        make_model_config("factorised", kind="mlp", likelihood="gaussian", frame_shape=[200])
    )
    save_model(model, tmp / "run" / "model")
    return tmp


def test_swap_uses_z_of_the_source_and_f_of_the_target(trained):
    from dsvae import ops
    from dsvae.convert import SpeechModel, convert_pair

    sm = SpeechModel.load(trained / "run", trained / "data")
    a, n_a = sm.analyse(tone(PITCH["bob"], 0.5))  # 51 frames -> 3 segments
    b, _ = sm.analyse(tone(PITCH["alice"], 0.3))
    assert a.shape == (3, 20, 200) and n_a == 51
    out = convert_pair(sm, a, b)
    enc_a, enc_b = (
        ops.encode(sm.model, torch.from_numpy(a)),
        ops.encode(sm.model, torch.from_numpy(b)),
    )
    f_b = enc_b.f.mean(0).expand(3, -1)
    np.testing.assert_allclose(out["a_to_b"], ops.decode(sm.model, enc_a.z, f_b).numpy(), rtol=1e-5)
    assert not np.allclose(out["a_to_b"], out["a_recon"])


def test_convert_cli_writes_wavs_at_the_source_rate_and_a_figure(trained, tmp_path, capsys):
    source = write(tmp_path / "src.wav", tone(PITCH["bob"], 0.4, rate=16000), rate=16000)
    target = write(tmp_path / "tgt.wav", tone(PITCH["alice"], 0.3))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "dsvae.cli",
        "convert",
        str(trained / "run"),
        "--data",
        str(trained / "data"),
    ]
    args = [
        "--source",
        str(source),
        "--target",
        str(target),
        "--out",
        str(tmp_path / "o"),
        "--iterations",
        "5",
    ]
    done = subprocess.run([*cmd, *args], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    converted = sf.info(str(tmp_path / "o" / "source_to_target.wav"))
    assert converted.samplerate == 16000 and abs(converted.frames - 6400) <= 2 * 160
    back = sf.info(str(tmp_path / "o" / "target_to_source.wav"))
    assert back.samplerate == 8000 and abs(back.frames - 2400) <= 2 * 80
    assert (tmp_path / "o" / "conversion.png").stat().st_size > 10_000
    stereo = write(tmp_path / "st.wav", np.full((800, 2), 0.1, np.float32))
    args[1] = str(stereo)
    assert main(cmd[3:] + args) == 2
    assert "2 channels" in capsys.readouterr().err


def test_relative_spectra_convert_at_the_source_level(tmp_path):
    from conftest import make_model_config
    from dsvae.convert import convert_files
    from dsvae.data import speech
    from dsvae.model import DSVAE, save_model

    root = fake_fsdd(tmp_path / "fsdd", speakers=("alice", "bob"), digits=(0,), takes=6)
    utts = speech.fsdd_utterances(root, unseen=[])
    speech.build_speech(utts, tmp_path / "data", dynamic_range_db=40)
    torch.manual_seed(0)
    model = DSVAE(make_model_config(kind="mlp", likelihood="gaussian", frame_shape=[200]))
    save_model(model, tmp_path / "run" / "model")
    source = write(tmp_path / "src.wav", 0.05 * tone(PITCH["bob"], 0.4))  # a quiet recording
    target = write(tmp_path / "tgt.wav", tone(PITCH["alice"], 0.3))
    convert_files(tmp_path / "run", tmp_path / "data", source, target, tmp_path / "o", n_iter=5)
    rms = lambda name: float(np.sqrt(np.mean(sf.read(str(tmp_path / name))[0] ** 2)))  # noqa: E731
    for name in ("o/source_to_target.wav", "o/source_reconstruction.wav"):
        assert rms(name) == pytest.approx(rms("src.wav"), rel=0.05)
    assert rms("o/target_to_source.wav") == pytest.approx(rms("tgt.wav"), rel=0.05)


def test_median_f0_finds_the_pitch_of_a_tone():
    from dsvae.audio import median_f0

    assert median_f0(tone(PITCH["dave"], 0.5), 8000) == pytest.approx(150.0, rel=0.03)
    assert median_f0(tone(PITCH["alice"], 0.5), 8000) == pytest.approx(220.0, rel=0.03)


def test_evaluate_conversion_measures_every_pair(tmp_path):
    from conftest import make_model_config
    from dsvae.data import speech
    from dsvae.eval.conversion import evaluate_conversion
    from dsvae.model import DSVAE, save_model

    fsdd = fake_fsdd(tmp_path / "fsdd", speakers=("bob",), digits=range(10), takes=6)
    for d in range(10):
        write(tmp_path / "allison" / "digits" / f"{d}.wav", tone(PITCH["alice"], 0.3, vowel=d))
    write(tmp_path / "allison" / "hello.wav", tone(PITCH["alice"], 0.4))
    utts = speech.fsdd_utterances(fsdd, unseen=[]) + speech.allison_utterances(tmp_path / "allison")
    speech.build_speech(utts, tmp_path / "data")
    torch.manual_seed(0)
    model = DSVAE(make_model_config(kind="mlp", likelihood="gaussian", frame_shape=[200]))
    save_model(model, tmp_path / "run" / "model")
    report = evaluate_conversion(
        tmp_path / "run", tmp_path / "data", fsdd, tmp_path / "allison", tmp_path / "e", n_iter=3
    )
    m2f, f2m = report["summary"]["male->female"], report["summary"]["female->male"]
    direction = lambda s: "male->female" if s is m2f else "female->male"  # noqa: E731
    assert m2f["pairs"] == f2m["pairs"] == 10
    assert m2f["median_f0_source"] == pytest.approx(110, rel=0.03)  # bob's tone
    assert m2f["median_f0_target"] == pytest.approx(220, rel=0.03)  # the "female" tone
    assert f2m["median_f0_source"] == pytest.approx(220, rel=0.03)
    for s in (m2f, f2m):  # the share of pairs shifted at least half the gap, from the pairs
        shifts = [r["f0_shift"] for r in report["pairs"] if r["direction"] == direction(s)]
        known = [x for x in shifts if x is not None]
        assert s["moved_half_gap"] == (
            pytest.approx(sum(x >= 0.5 for x in known) / len(known)) if known else None
        )
    assert "pairs shifted >= 0.5" in report["markdown"]
    for r in report["pairs"]:  # the target always says the next digit
        said = r["target"][-1] if r["target"].startswith("allison/") else r["target"][5]
        assert int(said) == (r["digit"] + 1) % 10, r
    for name in ("conversion_eval.json", "conversion_eval.md", "figure6.png", "male_to_female.wav"):
        assert (tmp_path / "e" / name).is_file()


def test_digit_classifier_is_the_same_whatever_the_thread_count(tmp_path):
    """The content measurement (b) must not move with OMP_NUM_THREADS.

    On 256 random segments, two threads and one give weights that differ by about 3e-8
    after two epochs unless training is held to one thread.
    """
    from dsvae.data import SequenceDataset, write_dataset
    from dsvae.eval.conversion import train_digit_classifier

    rng = np.random.default_rng(0)
    frames = rng.standard_normal((256, 20, 200)).astype(np.float32)
    meta = {"name": "random", "source": "test", "seed": 0, "licence": "none"}
    write_dataset(tmp_path / "d", frames, {"digit": rng.integers(0, 10, 256)}, meta)
    train = SequenceDataset(tmp_path / "d")
    before = torch.get_num_threads()
    weights = []
    try:
        for threads in (2, 1):
            torch.set_num_threads(threads)
            clf = train_digit_classifier(train, epochs=2, seed=3)
            assert torch.get_num_threads() == threads  # restored after training
            weights.append(clf.state_dict())
    finally:
        torch.set_num_threads(before)
    for name, value in weights[0].items():
        torch.testing.assert_close(value, weights[1][name], rtol=0, atol=0, msg=name)


def test_one_thread_restores_the_count_after_an_error():
    from dsvae.machine import one_thread

    before = torch.get_num_threads()
    with pytest.raises(ValueError), one_thread():
        assert torch.get_num_threads() == 1
        raise ValueError("inside")
    assert torch.get_num_threads() == before
