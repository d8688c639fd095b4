"""Bad input, as a table: every row is one clear line, exit status 2, nothing left behind.

The table is documented in docs/robustness.md. Also here: the stop at a non-finite loss,
a malicious pickle at every entry point that loads a file, and fuzzed loaders.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from conftest import Payload
from dsvae.cli import main
from dsvae.config import load_config
from dsvae.data import make_bouncing_ball_dataset
from dsvae.errors import DsvaeError
from dsvae.train import train
from dsvae.train.checkpoints import AtomicCheckpointIO
from tiny import as_set, tiny_overrides

TINY = tiny_overrides("train.batch_size=8", "train.progress_bar=false")
SET_TINY = as_set(TINY)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict[str, Path]:
    """Good inputs to spoil: a data set, a trained run, a video, a GIF, a PNG."""
    root = tmp_path_factory.mktemp("good")
    ball = make_bouncing_ball_dataset(root / "ball", n=20, length=4, size=16, seed=0)
    config = load_config("quickstart", [*TINY, "train.max_steps=2"])
    train(config, ball, root / "run")
    frames = np.zeros((8, 16, 16, 3), dtype=np.uint8)
    frames[:, 4:12, 4:12] = 200
    Image.fromarray(frames[0]).save(root / "frame.png")
    images = [Image.fromarray(f) for f in frames]
    images[0].save(root / "clip.gif", save_all=True, append_images=images[1:], duration=100)
    try:
        import av

        with av.open(str(root / "clip.mp4"), mode="w") as container:
            stream = container.add_stream("libx264", rate=10)
            stream.height = stream.width = 16
            stream.pix_fmt = "yuv420p"
            for f in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
            container.mux(stream.encode())
    except ImportError:
        pass
    return {"root": root, "ball": ball, "run": root / "run"}


# ----------------------------------------------------------------------------- builders


def _folder(tmp: Path, name: str, files: dict[str, bytes]) -> Path:
    folder = tmp / name
    folder.mkdir(parents=True, exist_ok=True)
    for fname, content in files.items():
        (folder / fname).parent.mkdir(parents=True, exist_ok=True)
        (folder / fname).write_bytes(content)
    return folder


def _npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def _png_bomb() -> bytes:
    """A valid PNG header that claims 100,000 x 100,000 pixels (40 GB as RGBA)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _video_args(src: Path, tmp: Path, *extra: str) -> list[str]:
    return ["data", "video", "--in", str(src), "--out", str(tmp / "out"),
            "--length", "4", "--size", "16", *extra]  # fmt: skip


def _train_args(data: Path, tmp: Path, config: str = "quickstart", *extra: str) -> list[str]:
    return ["train", config, "--data", str(data), "--out", str(tmp / "run"), *SET_TINY, *extra]


def _data_with(base: dict, tmp: Path, **files: bytes) -> Path:
    """A copy of the good data set with some of its files replaced."""
    good = {p.name: p.read_bytes() for p in base["ball"].iterdir()}
    return _folder(tmp, "data", {**good, **{k.replace("_", "."): v for k, v in files.items()}})


def _model_with(base: dict, tmp: Path, **files: bytes) -> Path:
    good = {p.name: p.read_bytes() for p in (base["run"] / "model").iterdir()}
    return _folder(tmp, "model", {**good, **{k.replace("_", "."): v for k, v in files.items()}})


def _run_with(base: dict, tmp: Path, files: dict[str, bytes]) -> Path:
    good = {
        str(p.relative_to(base["run"])): p.read_bytes()
        for p in base["run"].rglob("*")
        if p.is_file()
    }
    return _folder(tmp, "oldrun", {**good, **files})


def _yaml(tmp: Path, text: str) -> str:
    path = tmp / "config.yaml"
    path.write_text(text)
    return str(path)


def _wrong_shapes(base: dict) -> bytes:
    tensors = {
        k: torch.zeros(v.shape[0] + 1, *v.shape[1:]) if v.ndim else v
        for k, v in _state(base).items()
    }
    path = base["root"] / "wrong.safetensors"
    save_file(tensors, str(path))
    return path.read_bytes()


def _state(base: dict) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(base["run"] / "model" / "model.safetensors"))


# ----------------------------------------------------------------------------- the table


@dataclass
class Row:
    """One malformed input: ``build(tmp, base)`` makes it and returns the command line."""

    id: str
    what: str
    build: Callable[[Path, dict], list[str]]
    expect: str


def _gif(base: dict) -> bytes:
    return (base["root"] / "clip.gif").read_bytes()


def _mp4(base: dict) -> bytes:
    return (base["root"] / "clip.mp4").read_bytes()


def _png(base: dict) -> bytes:
    return (base["root"] / "frame.png").read_bytes()


def _frames_folder(tmp: Path, base: dict, bad_name: str, bad: bytes) -> Path:
    files = {f"clip/{i:03d}.png": _png(base) for i in range(6)}
    return _folder(tmp, "src", {**files, f"clip/{bad_name}": bad})


ROWS = [
    # --- dsvae data video
    Row("mp4-truncated", "an MP4 cut off after 200 bytes", lambda t, b: _video_args(
        _folder(t, "src", {"a.mp4": _mp4(b)[:200]}), t, "--strict"), r"cannot read .*a\.mp4"),
    Row("mp4-corrupt", "an MP4 of random bytes", lambda t, b: _video_args(
        _folder(t, "src", {"a.mp4": os.urandom(4000)}), t, "--strict"), r"cannot read .*a\.mp4"),
    Row("mp4-empty", "an empty .mp4 file", lambda t, b: _video_args(
        _folder(t, "src", {"a.mp4": b""}), t, "--strict"), r"cannot read .*a\.mp4"),
    Row("gif-truncated", "a GIF cut in half", lambda t, b: _video_args(
        _folder(t, "src", {"a.gif": _gif(b)[: len(_gif(b)) // 2]}), t, "--strict"),
        r"cannot read .*a\.gif"),
    Row("gif-corrupt", "a .gif that is text", lambda t, b: _video_args(
        _folder(t, "src", {"a.gif": b"GIF89a? no"}), t, "--strict"), r"cannot read .*a\.gif"),
    Row("png-truncated", "a frame PNG cut in half", lambda t, b: _video_args(
        _frames_folder(t, b, "003.png", _png(b)[:40]), t, "--strict"), r"cannot read .*clip"),
    Row("png-corrupt", "a frame PNG of random bytes", lambda t, b: _video_args(
        _frames_folder(t, b, "003.png", b"\x89PNG\r\n\x1a\n" + os.urandom(64)), t, "--strict"),
        r"cannot read .*clip"),
    Row("png-bomb", "a PNG that claims 100,000 x 100,000 pixels", lambda t, b: _video_args(
        _frames_folder(t, b, "003.png", _png_bomb()), t, "--strict"), r"cannot read .*clip.*pixels"),
    Row("png-unnumbered", "frame images without numbers", lambda t, b: _video_args(
        _folder(t, "src", {"clip/first.png": _png(b), "clip/second.png": _png(b)}), t,
        "--strict"), r"must have a number in their names"),
    Row("video-all-unreadable", "only unreadable files (no --strict)", lambda t, b: _video_args(
        _folder(t, "src", {"a.mp4": b"junk", "b.gif": b"junk"}), t), r"no sequence .*2 unreadable"),
    Row("video-too-short", "videos shorter than T", lambda t, b: _video_args(
        _folder(t, "src", {"a.gif": _gif(b)}), t, "--length", "50"), r"no sequence of 50 frames"),
    Row("video-empty-folder", "an empty input folder", lambda t, b: _video_args(
        _folder(t, "src", {}), t), r"found no videos"),
    Row("video-missing-folder", "an input folder that does not exist", lambda t, b: _video_args(
        t / "nope", t), r"does not exist"),
    Row("video-absurd-size", "--size 100000", lambda t, b: _video_args(
        _folder(t, "src", {"a.gif": _gif(b)}), t, "--size", "100000"), r"--size must be between"),
    Row("video-absurd-window", "--length 10^6 at 512 px", lambda t, b: _video_args(
        _folder(t, "src", {"a.gif": _gif(b)}), t, "--length", "1000000", "--size", "512"),
        r"would take .* MiB"),
    Row("video-zero-length", "--length 0", lambda t, b: _video_args(
        _folder(t, "src", {"a.gif": _gif(b)}), t, "--length", "0"), r"at least 1"),
    Row("video-out-not-a-data-set", "--out is a folder of other files", lambda t, b: _video_args(
        _folder(t, "src", {"a.gif": _gif(b)}), _folder(t, "x", {"out/notes.txt": b"mine"}).parent
        / "x", "--overwrite"), r"refusing to replace it"),
    # --- data sets read by dsvae train
    Row("npy-truncated", "frames.npy cut off", lambda t, b: _train_args(
        _data_with(b, t, frames_npy=(b["ball"] / "frames.npy").read_bytes()[:500]), t),
        r"could not read .*frames\.npy"),
    Row("npy-corrupt", "frames.npy of random bytes", lambda t, b: _train_args(
        _data_with(b, t, frames_npy=os.urandom(1000)), t), r"could not read .*frames\.npy"),
    Row("npy-pickle", "frames.npy holding pickled objects", lambda t, b: _train_args(
        _data_with(b, t, frames_npy=_npy(np.array([{}, None], dtype=object), True)), t),
        r"no pickled objects"),
    Row("npy-int64", "frames.npy of int64", lambda t, b: _train_args(
        _data_with(b, t, frames_npy=_npy(np.zeros((4, 4, 16, 16, 1), np.int64))), t),
        r"dtype int64; accepted are uint8"),
    Row("npy-float64", "frames.npy of float64 vectors", lambda t, b: _train_args(
        _data_with(b, t, frames_npy=_npy(np.zeros((4, 4, 20)))), t), r"dtype float64"),
    Row("npy-4-channels", "RGBA frames", lambda t, b: _train_args(
        _data_with(b, t, frames_npy=_npy(np.zeros((4, 4, 16, 16, 4), np.uint8))), t),
        r"1 \(grey\) or 3 \(RGB\) channels"),
    Row("npy-nan", "float32 frames with a NaN", lambda t, b: _train_args(_folder(t, "data", {
        "frames.npy": _npy(_vectors(77, np.nan))}), t, "quickstart", *MLP),
        r"sequence 0 holds NaN or infinite values"),
    Row("npy-inf", "float32 frames with an inf", lambda t, b: _train_args(_folder(t, "data", {
        "frames.npy": _npy(_vectors(300, -np.inf))}), t, "quickstart", *MLP),
        r"sequence 3 holds NaN or infinite values"),
    Row("npy-empty", "frames.npy with no sequences", lambda t, b: _train_args(
        _data_with(b, t, frames_npy=_npy(np.zeros((0, 4, 16, 16, 1), np.uint8))), t),
        r"every dim must be at least 1"),
    Row("data-empty-folder", "an empty data folder", lambda t, b: _train_args(
        _folder(t, "data", {}), t), r"no frames\.npy"),
    Row("labels-mismatched-n", "labels.npz with the wrong N", lambda t, b: _train_args(
        _data_with(b, t, labels_npz=_npz(positions=np.zeros((3, 4, 2)))), t),
        r"first dim must be the number of sequences N=20"),
    Row("meta-mismatched-shape", "meta.json that disagrees with frames.npy", lambda t, b:
        _train_args(_data_with(b, t, meta_json=b'{"frames_shape": [20, 5, 16, 16, 1]}'), t),
        r"folder is inconsistent"),
    Row("meta-not-json", "meta.json that is not JSON", lambda t, b: _train_args(
        _data_with(b, t, meta_json=b"{name: ball"), t), r"meta\.json is not valid JSON"),
    Row("frame-size-mismatch", "16 px data for a config that says 32 px", lambda t, b:
        _train_args(b["ball"], t, "quickstart", "--set", "model.frame_shape=[1,32,32]"),
        r"frame_shape is \[1, 32, 32\] but the data set's frames are \[1, 16, 16\]"),
    Row("frame-size-indivisible", "18 px frames for a stride-4 encoder", lambda t, b: _train_args(
        _folder(t, "data", {"frames.npy": _npy(np.zeros((4, 4, 18, 18, 1), np.uint8))}), t),
        r"18"),
    # --- configs
    Row("yaml-typo", "a YAML with a misspelt key", lambda t, b: _train_args(
        b["ball"], t, _yaml(t, "model:\n  zdim: 3\n")), r"unknown key model\.zdim.*z_dim"),
    Row("yaml-unknown-section", "a YAML with an unknown section", lambda t, b: _train_args(
        b["ball"], t, _yaml(t, "modle:\n  z_dim: 3\n")), r"unknown key modle"),
    Row("yaml-wrong-type", "a YAML with a string for an int", lambda t, b: _train_args(
        b["ball"], t, _yaml(t, "train:\n  max_epochs: three\n")), r"train\.max_epochs must be of type int"),
    Row("yaml-malformed", "a YAML that does not parse", lambda t, b: _train_args(
        b["ball"], t, _yaml(t, "model: [unclosed\n")), r"not valid YAML"),
    Row("yaml-a-list", "a YAML that is a list", lambda t, b: _train_args(
        b["ball"], t, _yaml(t, "- model\n- train\n")), r"mapping|dict|sections"),
    Row("set-unknown-key", "--set train.epochs=3", lambda t, b: _train_args(
        b["ball"], t, "quickstart", "--set", "train.epochs=3"), r"unknown key train\.epochs"),
    Row("set-absurd-width", "--set model.hidden_dim=-4", lambda t, b: _train_args(
        b["ball"], t, "quickstart", "--set", "model.hidden_dim=-4"), r"hidden_dim must be > 0"),
    # --- saved models and runs
    Row("model-weights-pickle", "model.safetensors that is a malicious pickle", lambda t, b: [
        "generate", str(_model_with(b, t, model_safetensors=pickle.dumps(
            {"w": Payload(t / "pwned")}))), "--out", str(t / "out")], r"not a valid safetensors"),
    Row("model-weights-torch", "model.safetensors written by torch.save", lambda t, b: [
        "generate", str(_model_with(b, t, model_safetensors=_torch_bytes(t))), "--out",
        str(t / "out")], r"not a valid safetensors"),
    Row("model-wrong-shapes", "safetensors with wrong tensor shapes", lambda t, b: [
        "generate", str(_model_with(b, t, model_safetensors=_wrong_shapes(b))), "--out",
        str(t / "out")], r"does not match config\.json"),
    Row("model-config-not-json", "config.json that is not JSON", lambda t, b: [
        "generate", str(_model_with(b, t, config_json=b"{oops")), "--out", str(t / "out")],
        r"not valid JSON"),
    Row("model-config-unknown-key", "config.json with an unknown model key", lambda t, b: [
        "generate", str(_model_with(b, t, config_json=json.dumps({"format": "dsvae-model",
            "format_version": 1, "model": {"zdim": 3}}).encode())), "--out", str(t / "out")],
        r"unknown key model\.zdim"),
    Row("model-no-config", "a folder without config.json", lambda t, b: [
        "generate", str(_folder(t, "m", {"model.safetensors": b""})), "--out", str(t / "out")],
        r"no config\.json"),
    Row("run-summary-corrupt", "a run whose summary.json is cut off", lambda t, b: [
        "generate", str(_run_with(b, t, {"summary.json": b'{"sequence_len'})), "--out",
        str(t / "out")], r"summary\.json is not valid JSON"),
    Row("checkpoint-pickle-export", "last.ckpt that is a malicious pickle (export)", lambda t, b: [
        "export", str(_run_with(b, t, {"checkpoints/last.ckpt": _evil_ckpt(t)}))],
        r"cannot be loaded safely"),
    Row("checkpoint-pickle-resume", "last.ckpt that is a malicious pickle (--resume)", lambda t, b:
        ["train", "quickstart", "--data", str(b["ball"]), "--out", str(_run_with(
            b, t, {"checkpoints/last.ckpt": _evil_ckpt(t)})), *SET_TINY, "--resume"],
        r"cannot be loaded safely"),
    Row("checkpoint-truncated", "last.ckpt cut off (export)", lambda t, b: [
        "export", str(_run_with(b, t, {"checkpoints/last.ckpt": (
            b["run"] / "checkpoints" / "last.ckpt").read_bytes()[:300]}))],
        r"cannot be loaded safely"),
    Row("mask-wrong-length", "an imputation mask for the wrong T", lambda t, b: [
        "impute", str(b["run"]), "--data", str(b["ball"]), "--out", str(t / "out"), "--mask",
        "11011"], r"4 characters"),
    Row("data-frame-size-for-model", "32 px data for a 16 px model", lambda t, b: [
        "swap", str(b["run"]), "--data", str(make_bouncing_ball_dataset(
            t / "big", n=4, length=4, size=32)), "--out", str(t / "out")], r"\[1, 32, 32\]"),
    Row("indices-out-of-range", "--indices past the end", lambda t, b: [
        "reconstruct", str(b["run"]), "--data", str(b["ball"]), "--out", str(t / "out"),
        "--indices", "0,99"], r"99"),
    # --- dsvae data speech (a folder of WAVs, three speakers)
    Row("wav-truncated", "a WAV cut off inside its header", lambda t, b: _speech_args(
        t, _wav(b)[:30]), r"a_1\.wav is not a readable audio file"),
    Row("wav-corrupt", "a .wav of random bytes after RIFF", lambda t, b: _speech_args(
        t, b"RIFF" + os.urandom(200)), r"a_1\.wav is not a readable audio file"),
    Row("wav-empty", "an empty .wav file", lambda t, b: _speech_args(t, b""),
        r"a_1\.wav is not a readable audio file"),
    Row("wav-stereo", "a stereo WAV", lambda t, b: _speech_args(t, _wav(b, channels=2)),
        r"a_1\.wav has 2 channels; speech must be mono"),
    Row("wav-nan", "a float WAV holding NaN samples", lambda t, b: _speech_args(
        t, _wav(b, nan=True)), r"a_1\.wav has 1 NaN or infinite samples"),
    Row("run-config-damaged", "a run whose config.yaml holds a Python tag", lambda t, b: [
        "export", str(_run_with(b, t, {"config.yaml": b"model: !!python/name:os.system"}))],
        r"config\.yaml is not valid YAML .*run folder is damaged"),
    Row("ball-absurd-n", "dsvae data bouncing-ball --n 10^12", lambda t, b: [
        "data", "bouncing-ball", "--out", str(t / "out"), "--n", "1000000000000"],
        r"not enough memory"),
]  # fmt: skip


def _wav(base: dict, channels: int = 1, nan: bool = False) -> bytes:
    """A 0.5 s 220 Hz tone at 8 kHz as WAV bytes (float samples, one NaN, with ``nan``)."""
    import io

    import soundfile

    tone = 0.5 * np.sin(2 * np.pi * 220 * np.arange(4000) / 8000).astype(np.float32)
    if nan:
        tone[100] = np.nan
    buffer = io.BytesIO()
    subtype = "FLOAT" if nan else None
    soundfile.write(buffer, np.stack([tone] * channels, 1), 8000, format="WAV", subtype=subtype)
    return buffer.getvalue()


def _speech_args(tmp: Path, bad: bytes) -> list[str]:
    """``dsvae data speech --folder`` over three speakers' WAVs, one of them ``bad``."""
    good = _wav({})
    files = {f"{s}_{i}.wav": good for s in "abc" for i in range(3)}
    src = _folder(tmp, "wavs", {**files, "a_1.wav": bad})
    return ["data", "speech", "--folder", str(src), "--speaker-regex", "^([a-z])_",
            "--out", str(tmp / "out")]  # fmt: skip


MLP = ["--set", "model.frames.kind=mlp", "--set", "model.likelihood.kind=gaussian"]


def _vectors(index: int, value: float) -> np.ndarray:
    """float32 (4, 4, 20) vectors in [0, 1] with ``value`` at flat position ``index``."""
    return np.where(np.arange(320) == index, value, 0.5).astype(np.float32).reshape(4, 4, 20)


def _npz(**arrays: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _torch_bytes(tmp: Path) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buffer)
    return buffer.getvalue()


def _evil_ckpt(tmp: Path) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save({"state_dict": {}, "evil": Payload(tmp / "pwned")}, buffer)
    return buffer.getvalue()


PROGRESS = re.compile(r"^[\w ]+:\s+\d+%\|")


def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input_gives_one_clear_line(row: Row, base, tmp_path, capsys):
    if row.id.startswith("mp4") and not (base["root"] / "clip.mp4").exists():
        pytest.skip("needs PyAV")
    if row.id.startswith("wav"):
        pytest.importorskip("soundfile")
    argv = row.build(tmp_path, base)
    before = _snapshot(tmp_path)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    # progress bars (tqdm, which redraws with carriage returns) are not messages
    lines = [line for line in err.splitlines() if line.strip() and not PROGRESS.match(line)]
    assert code == 2, err
    assert lines and lines[-1].startswith(f"dsvae {argv[0]}: error: "), err
    assert all(line.startswith("warning: ") for line in lines[:-1]), err
    assert "Traceback" not in err
    assert re.search(row.expect, lines[-1]), lines[-1]
    assert _snapshot(tmp_path) == before, "something was left behind"
    assert not (tmp_path / "pwned").exists(), "a pickle was unpickled"


def test_the_table_is_big_and_documented():
    assert len(ROWS) >= 30
    doc = (Path(__file__).resolve().parents[1] / "docs" / "robustness.md").read_text()
    missing = [row.id for row in ROWS if f"`{row.id}`" not in doc]
    assert not missing, f"rows not in docs/robustness.md: {missing}"


# ----------------------------------------------------------------------------- non-finite loss


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(base, tmp_path, monkeypatch):
    """The loss turns NaN at step 4, between checks: the epoch-end checkpoint is refused."""
    from dsvae.model.dsvae import DSVAE as Model

    original, calls = Model.loss, []

    def poisoned(self, out, *args, **kwargs):
        loss = original(self, out, *args, **kwargs)
        calls.append(1)
        return loss * float("nan") if len(calls) == 5 else loss  # the fifth step: step 4

    monkeypatch.setattr(Model, "loss", poisoned)
    # 20 sequences, 3 of them held out, batches of 8: 3 steps per epoch, a checkpoint each
    config = load_config("quickstart", [*TINY, "train.max_epochs=4", "train.log_every_n_steps=50"])
    run = tmp_path / "run"
    with pytest.raises(DsvaeError, match=r"NaN or infinite at step 4;.*step 3\) is the last good"):
        train(config, base["ball"], run)
    state = AtomicCheckpointIO().load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert state["global_step"] == 3
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values())
    assert not (run / "model").exists() and not list(run.rglob("*.tmp"))


def test_a_nan_loss_through_the_cli_is_one_line(base, tmp_path, capsys, monkeypatch):
    from dsvae.model.dsvae import DSVAE as Model

    monkeypatch.setattr(Model, "loss", lambda self, out, *a, **k: out.terms["elbo"].sum() * np.inf)
    code = main(_train_args(base["ball"], tmp_path, "quickstart", "--set", "train.max_steps=3"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "at step 0" in err and "no checkpoint was written before it" in err


# ----------------------------------------------------------------------------- nothing unpickled

UNSAFE = {
    "pickle.load": "unpickles",
    "pickle.Unpickler": "unpickles",
    "yaml.load(": "can build Python objects; use yaml.safe_load",
    "yaml.unsafe_load": "builds Python objects",
    "allow_pickle=True": "unpickles object arrays",
    "weights_only=False": "unpickles checkpoints",
    "load_from_checkpoint": "unpickles hyper-parameters",
    "joblib.load": "unpickles",
    "read_pickle": "unpickles",
}


def test_no_code_path_can_unpickle_a_users_file():
    """Every loader in the package: torch.load only with weights_only=True, np.load without
    pickles, YAML only through safe_load, and no pickle module at all."""
    src = Path(__file__).resolve().parents[1] / "src" / "dsvae"
    found = []
    for path in src.rglob("*.py"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#")[0]
            for pattern, why in UNSAFE.items():
                if pattern in code:
                    found.append(f"{path.name}:{n}: {pattern} {why}")
            if "torch.load(" in code and "weights_only=True" not in code:
                found.append(f"{path.name}:{n}: torch.load without weights_only=True")
            if "np.load(" in code and "allow_pickle=False" not in code:
                found.append(f"{path.name}:{n}: np.load without allow_pickle=False")
    assert not found, found


def _plant(tmp: Path, base: dict, where: str) -> Callable[[], object]:
    """Put a malicious pickle where a loader looks; return the call that loads it."""
    from dsvae.data import SequenceDataset
    from dsvae.eval.judge import load_judge
    from dsvae.model import load_model
    from dsvae.train.run import export_checkpoint

    evil = pickle.dumps({"w": Payload(tmp / "pwned")})
    if where == "frames.npy":
        objects = np.array([Payload(tmp / "pwned")], dtype=object)
        data = _folder(tmp, "data", {"frames.npy": _npy(objects, allow_pickle=True)})
        return lambda: SequenceDataset(data)
    if where == "labels.npz":
        objects = np.array([Payload(tmp / "pwned")] * 20, dtype=object)
        data = _data_with(base, tmp, labels_npz=_npz(positions=objects))
        return lambda: SequenceDataset(data)
    if where == "model.safetensors":
        model = _model_with(base, tmp, model_safetensors=evil)
        return lambda: load_model(model)
    if where == "judge.safetensors":
        judge = _folder(tmp, "judge", {"judge.json": b"{}", "judge.safetensors": evil})
        return lambda: load_judge(judge)
    if where == "last.ckpt":
        run = _run_with(base, tmp, {"checkpoints/last.ckpt": _evil_ckpt(tmp)})
        return lambda: export_checkpoint(run)
    if where == "resume":
        run = _run_with(base, tmp, {"checkpoints/last.ckpt": _evil_ckpt(tmp)})
        config = load_config("quickstart", [*TINY, "train.max_steps=4"])
        return lambda: train(config, base["ball"], run, resume=True)
    if where == "config.yaml":
        path = _yaml(tmp, f"model: !!python/object/apply:builtins.open ['{tmp / 'pwned'}', 'w']\n")
        return lambda: load_config(path)
    if where == "run config.yaml":
        run = _run_with(
            base,
            tmp,
            {
                "config.yaml": (
                    f"model: !!python/object/apply:builtins.open ['{tmp / 'pwned'}', 'w']\n"
                ).encode()
            },
        )
        return lambda: export_checkpoint(run)
    if where == "video file":
        src = _folder(tmp, "src", {"a.mp4": evil, "b.gif": evil, "c/1.png": evil})
        return lambda: import_videos_quietly(src, tmp / "out")
    raise AssertionError(where)


def import_videos_quietly(src: Path, out: Path) -> None:
    import warnings

    from dsvae.data.video import UnreadableFileWarning, import_videos

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreadableFileWarning)
        import_videos(src, out, length=2, size=8)


PLANTED = ["frames.npy", "labels.npz", "model.safetensors", "judge.safetensors", "last.ckpt",
           "resume", "config.yaml", "run config.yaml", "video file"]  # fmt: skip


@pytest.mark.parametrize("where", PLANTED)
def test_a_malicious_pickle_never_runs(where, base, tmp_path):
    load = _plant(tmp_path, base, where)
    with pytest.raises(DsvaeError):
        load()
    assert not (tmp_path / "pwned").exists(), f"a pickle in {where} was unpickled"


# ----------------------------------------------------------------------------- fuzzed loaders

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = settings(  # DSVAE_FUZZ_EXAMPLES=2000 for a longer hunt
    max_examples=int(os.environ.get("DSVAE_FUZZ_EXAMPLES", "25")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@st.composite
def spoiled(draw, good: bytes) -> bytes:
    """``good`` truncated, with bytes overwritten, or replaced by random bytes."""
    kind = draw(st.sampled_from(["truncate", "flip", "random"]))
    if kind == "random":
        return draw(st.binary(max_size=2 * len(good)))
    data = bytearray(good)
    if kind == "truncate":
        return bytes(data[: draw(st.integers(0, len(data) - 1))])
    for _ in range(draw(st.integers(1, 8))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    return bytes(data)


GOOD_NPY = _npy(np.arange(2 * 3 * 4 * 4, dtype=np.uint8).reshape(2, 3, 4, 4, 1))
GOOD_NPZ = _npz(positions=np.zeros((2, 3, 2), np.float32))
GOOD_META = json.dumps({"name": "x", "frames_shape": [2, 3, 4, 4, 1]}).encode()


def _loads_or_refuses(load: Callable[[], object]) -> None:
    """``load()`` either works or raises a DsvaeError; anything else fails the test."""
    with contextlib.suppress(DsvaeError):
        load()


@FUZZ
@given(frames=spoiled(GOOD_NPY), labels=spoiled(GOOD_NPZ), meta=spoiled(GOOD_META))
def test_fuzzed_data_sets_load_or_are_refused(tmp_path, frames, labels, meta):
    from dsvae.data import SequenceDataset

    folder = tmp_path / f"d{abs(hash((frames, labels, meta)))}"
    _folder(folder, "", {"frames.npy": frames, "labels.npz": labels, "meta.json": meta})

    def load() -> None:
        data = SequenceDataset(folder)
        _ = [data[i] for i in range(len(data))]

    _loads_or_refuses(load)


@FUZZ
@given(data=st.data())
def test_fuzzed_model_folders_load_or_are_refused(base, tmp_path, data):
    from dsvae.model import load_model

    good = base["run"] / "model"
    weights = data.draw(spoiled((good / "model.safetensors").read_bytes()[:4096]))
    config = data.draw(spoiled((good / "config.json").read_bytes()))
    folder = tmp_path / f"m{abs(hash((weights, config)))}"
    _folder(folder, "", {"model.safetensors": weights, "config.json": config})
    _loads_or_refuses(lambda: load_model(folder))


@FUZZ
@given(data=st.data())
def test_fuzzed_checkpoints_load_or_are_refused(base, tmp_path, data):
    ckpt = data.draw(spoiled((base["run"] / "checkpoints" / "last.ckpt").read_bytes()))
    path = tmp_path / f"c{abs(hash(ckpt))}.ckpt"
    path.write_bytes(ckpt)
    _loads_or_refuses(lambda: AtomicCheckpointIO().load_checkpoint(path))


@FUZZ
@given(
    text=st.one_of(
        st.text(max_size=200),
        st.builds(
            lambda k, v: f"model:\n  {k}: {v}\ntrain:\n  lr: {v}\n",
            st.sampled_from(["z_dim", "f_dim", "frames", "likelihood", "posterior", "zdim"]),
            st.one_of(st.text(max_size=20), st.integers(), st.floats()).map(str),
        ),
    ),
    overrides=st.lists(st.text(max_size=30), max_size=3),
)
def test_fuzzed_configs_load_or_are_refused(tmp_path, text, overrides):
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    _loads_or_refuses(lambda: load_config(path, overrides))


@FUZZ
@given(data=st.data())
def test_fuzzed_videos_are_read_skipped_or_refused(base, tmp_path, data):
    names = ["clip.gif", "frame.png"] + (
        ["clip.mp4"] if (base["root"] / "clip.mp4").exists() else []
    )
    name = data.draw(st.sampled_from(names))
    content = data.draw(spoiled((base["root"] / name).read_bytes()))
    src = tmp_path / f"s{abs(hash(content))}"
    target = f"frames/001{Path(name).suffix}" if name.endswith(".png") else name
    _folder(src, "", {target: content})
    _loads_or_refuses(lambda: import_videos_quietly(src, src.parent / f"{src.name}-out"))
