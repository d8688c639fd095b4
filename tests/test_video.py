"""Users' own video: reading every source kind, windows, provenance, skips, and end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dsvae.cli import main
from dsvae.data import SequenceDataset
from dsvae.data.video import (
    UnreadableFileWarning,
    find_sources,
    import_videos,
    square_frame,
    windows,
)
from dsvae.errors import DataError

av = pytest.importorskip("av")


def moving_square(n: int, h: int = 24, w: int = 32) -> np.ndarray:
    """uint8 (n, h, w, 3): a red square moving right on black, one pixel pair per frame."""
    frames = np.zeros((n, h, w, 3), dtype=np.uint8)
    for t in range(n):
        frames[t, 8:16, 2 * t : 2 * t + 8, 0] = 255
    return frames


def write_video(path: Path, frames: np.ndarray, codec: str = "libx264") -> Path:
    """Encode uint8 (n, h, w, 3) frames with PyAV (h and w even)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def write_gif(path: Path, frames: np.ndarray) -> Path:
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)
    return path


def write_frame_folder(path: Path, frames: np.ndarray) -> Path:
    path.mkdir(parents=True)
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(path / f"img_{t}.png")  # img_10 sorts after img_9
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """One of each: MP4, WebM, AVI, GIF and a folder of PNG frames, 12 frames each."""
    root = tmp_path_factory.mktemp("videos")
    frames = moving_square(12)
    write_video(root / "a.mp4", frames, "libx264")
    write_video(root / "b.webm", frames, "libvpx")
    write_video(root / "c.avi", frames, "mpeg4")
    write_gif(root / "d.gif", frames)
    write_frame_folder(root / "e", frames)
    return root


def test_every_source_kind_is_read(videos, tmp_path):
    report = import_videos(videos, tmp_path / "d", length=4, size=16, stride=2)
    assert report.num_sequences == 5 * 5 and report.sources_used == 5  # starts 0, 2, 4, 6, 8
    data = SequenceDataset(tmp_path / "d")
    assert data.frames.shape == (25, 4, 16, 16, 3)
    assert list(np.unique(data.labels["source"])) == ["a.mp4", "b.webm", "c.avi", "d.gif", "e"]
    assert data.labels["start_frame"][:5].tolist() == [0, 2, 4, 6, 8]
    # every source shows the same motion: the red square's column moves right over time
    red = data.frames[..., 0].astype(float)  # (N, T, H, W)
    column = (red.sum(axis=2) * np.arange(16)).sum(-1) / red.sum(axis=(2, 3))  # (N, T)
    assert np.all(np.diff(column, axis=1) > 0)
    np.testing.assert_allclose(column.reshape(5, 5, 4), column[:5][None].repeat(5, 0), atol=0.6)
    meta = json.loads((tmp_path / "d" / "meta.json").read_text())
    assert meta["sources"][4] == "e" and meta["stride"] == 2 and meta["skipped"] == []


def test_frame_folders_are_read_in_numeric_order(tmp_path):
    frames = np.zeros((11, 8, 8, 3), dtype=np.uint8)
    frames[:, :, :, :] = (np.arange(11) * 20)[:, None, None, None]  # frame t has value 20 t
    write_frame_folder(tmp_path / "clip", frames)
    import_videos(tmp_path / "clip", tmp_path / "d", length=11, size=8, channels=1)
    got = SequenceDataset(tmp_path / "d").frames[0, :, 0, 0, 0]
    assert got.tolist() == [20 * t for t in range(11)]


def test_windows_and_stride():
    frames = iter([np.full((1, 1, 1), t, np.uint8) for t in range(10)])
    got = [(s, w[:, 0, 0, 0].tolist()) for s, w in windows(frames, length=3, stride=4)]
    assert got == [(0, [0, 1, 2]), (4, [4, 5, 6])]  # window 8 would need frames 8..10


def test_square_frame_crops_the_centre():
    image = np.zeros((10, 30, 3), dtype=np.uint8)
    image[:, 10:20] = 255  # the central 10x10 square is white, the sides black
    out = square_frame(Image.fromarray(image), 5, 1)
    assert out.shape == (5, 5, 1) and out.min() > 200  # the black sides are cropped away


def test_unreadable_files_are_skipped_and_counted(videos, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    good = write_video(src / "good.mp4", moving_square(8))
    (src / "bad.mp4").write_bytes(good.read_bytes()[:300])  # truncated
    (src / "bad.gif").write_bytes(b"GIF89a not really")
    with pytest.warns(UnreadableFileWarning) as caught:
        report = import_videos(src, tmp_path / "d", length=4, size=16)
    assert sorted(Path(str(w.message).split()[1]).name for w in caught) == ["bad.gif:", "bad.mp4:"]
    assert {f for f, _ in report.skipped} == {"bad.mp4", "bad.gif"}
    assert SequenceDataset(tmp_path / "d").labels["source"].tolist() == ["good.mp4"] * 2
    with pytest.raises(DataError, match=r"cannot read .*bad.gif.*--strict"):
        import_videos(src, tmp_path / "strict", length=4, size=16, strict=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "src"]  # nothing partial


def test_a_file_failing_midway_leaves_none_of_its_windows(tmp_path):
    src = tmp_path / "src"
    folder = write_frame_folder(src / "clip", moving_square(12))
    (folder / "img_7.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    write_gif(src / "ok.gif", moving_square(8))
    with pytest.warns(UnreadableFileWarning, match="clip"):
        report = import_videos(src, tmp_path / "d", length=4, size=16)
    data = SequenceDataset(tmp_path / "d")
    assert report.num_sequences == len(data) == 2 and set(data.labels["source"]) == {"ok.gif"}


def test_no_usable_sequence_is_an_error_and_writes_nothing(videos, tmp_path):
    with pytest.raises(DataError, match="no sequence of 50 frames.*lower --length"):
        import_videos(videos, tmp_path / "d", length=50, size=16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="found no videos"):
        import_videos(tmp_path / "empty", tmp_path / "d", length=4, size=16)
    with pytest.raises(DataError, match="would take .* MiB"):
        import_videos(videos, tmp_path / "d", length=100_000, size=1024)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_without_pyav_the_message_names_the_extra(videos, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(DataError, match=r"pip install 'dsvae\[video\]'"):
        import_videos(videos, tmp_path / "d", length=4, size=16)
    assert not (tmp_path / "d").exists()
    import_videos(videos / "d.gif", tmp_path / "g", length=4, size=16)  # GIFs need no PyAV
    assert [s.kind for s in find_sources(videos)] == ["video", "video", "video", "gif", "frames"]


def test_import_train_and_swap_end_to_end(videos, tmp_path):
    """Tiny videos -> `dsvae data video` -> a few training steps -> `dsvae swap`."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-m", "dsvae.cli", "data", "video", "--in", str(videos), "--out",
         str(tmp_path / "data"), "--length", "4", "--size", "16", "--stride", "2"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "wrote 25 sequences of 4 frames (16x16x3) from 5 videos" in proc.stdout
    tiny = ["model.f_dim=4", "model.z_dim=3", "model.hidden_dim=8", "model.frames.channels=[4,4]",
            "model.frames.strides=[2,2]", "model.frames.feature_dim=16", "train.batch_size=8",
            "train.max_steps=4", "train.progress_bar=false"]  # fmt: skip
    args = ["train", "quickstart", "--data", tmp_path / "data", "--out", tmp_path / "run"]
    assert main([str(a) for a in args] + [x for s in tiny for x in ("--set", s)]) == 0
    out = tmp_path / "swap"
    assert main(["swap", str(tmp_path / "run"), "--data", str(tmp_path / "data"), "--out",
                 str(out), "--n", "4"]) == 0  # fmt: skip
    with Image.open(out / "swap.png") as image:
        assert np.asarray(image).std() > 0
    assert (out / "swap.gif").is_file()
