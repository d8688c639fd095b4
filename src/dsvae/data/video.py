"""Users' own video as a data set: fixed-length windows of square frames.

Sources, found under the input folder (recursively, in name order):

* video files (``.mp4 .webm .avi .mov .mkv .m4v``), decoded with PyAV (the ``video`` extra);
* animated GIFs, decoded with Pillow;
* folders of numbered frame images (``.png .jpg .jpeg .bmp .webp``), read in the order of
  the last number in each name (``frame2.png`` before ``frame10.png``).

Each frame is centre-cropped to a square, resized to ``size x size`` and converted to grey
(1 channel) or RGB (3); every ``stride`` frames a window of ``length`` frames becomes one
sequence. Windows are appended to ``frames.npy`` as they are cut, so memory holds one window
and one frame, never the data set. Labels keep the provenance of every sequence: ``source``
(path relative to the input folder), ``source_index`` and ``start_frame``.
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageSequence
from tqdm import tqdm

from dsvae.atomic import atomic_save_npz, atomic_write_json, fsync_path, remove_dirs
from dsvae.data.folders import (
    FRAMES_FILE,
    check_target,
    commit_folder,
    make_parents,
    make_sibling,
    naming_target,
)
from dsvae.data.storage import LABELS_FILE, META_FILE
from dsvae.errors import DataError, DsvaeError, write_error

VIDEO_SUFFIXES = (".mp4", ".webm", ".avi", ".mov", ".mkv", ".m4v")
GIF_SUFFIXES = (".gif",)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
MAX_SIZE = 1024
MAX_WINDOW_BYTES = 256 * 2**20
"""A refused ``length * size * size * channels``: one window must fit in memory easily."""
LICENCE = "that of the source videos (dsvae adds no content)"
_HEADER_BYTES = 256  # room for the .npy header of any (N, T, S, S, C) uint8 shape


class UnreadableFileWarning(UserWarning):
    """A source file could not be read and was skipped."""


@dataclass
class Source:
    """One video: a file (``kind`` "video" or "gif") or a folder of numbered frame images."""

    path: Path
    kind: str
    frames: list[Path] = field(default_factory=list)


@dataclass
class VideoImport:
    """What :func:`import_videos` wrote and what it skipped."""

    out_dir: Path
    num_sequences: int
    sources_used: int
    skipped: list[tuple[str, str]]
    too_short: list[str]


def check_video_args(length: int, size: int, stride: int, channels: int) -> None:
    """Raise DataError for a window that is empty, absurdly large or not grey/RGB."""
    if length < 1 or stride < 1:
        raise DataError(f"--length and --stride must be at least 1, got {length} and {stride}")
    if not 4 <= size <= MAX_SIZE:
        raise DataError(f"--size must be between 4 and {MAX_SIZE} pixels, got {size}")
    if channels not in (1, 3):
        raise DataError(f"--channels must be 1 (grey) or 3 (RGB), got {channels}")
    window = length * size * size * channels
    if window > MAX_WINDOW_BYTES:
        raise DataError(
            f"one sequence of {length} frames of {size}x{size}x{channels} would take "
            f"{window / 2**20:.0f} MiB (limit {MAX_WINDOW_BYTES // 2**20} MiB); "
            "lower --length or --size"
        )


def _frame_number(path: Path) -> int | None:
    numbers = re.findall(r"\d+", path.stem)
    return int(numbers[-1]) if numbers else None


def find_sources(in_path: str | os.PathLike) -> list[Source]:
    """Video files, GIFs and frame-image folders under ``in_path`` (a folder or one file)."""
    root = Path(in_path)
    if not root.exists():
        raise DataError(f"{root} does not exist; pass a folder of videos with --in")
    if root.is_file():
        files, folders = [root], []
    else:
        files, folders = [], []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            here = sorted(Path(dirpath) / f for f in filenames if not f.startswith("."))
            files += [p for p in here if p.suffix.lower() in VIDEO_SUFFIXES + GIF_SUFFIXES]
            images = [p for p in here if p.suffix.lower() in IMAGE_SUFFIXES]
            if images:
                folders.append(Source(Path(dirpath), "frames", images))
    sources = [
        Source(p, "gif" if p.suffix.lower() in GIF_SUFFIXES else "video")
        for p in files
        if p.suffix.lower() in VIDEO_SUFFIXES + GIF_SUFFIXES
    ]
    sources = sorted(sources + folders, key=lambda s: str(s.path))
    if not sources:
        raise DataError(
            f"found no videos in {root}: expected {' '.join(VIDEO_SUFFIXES + GIF_SUFFIXES)} "
            f"files or folders of numbered {'/'.join(IMAGE_SUFFIXES)} frames"
        )
    return sources


def square_frame(image: Image.Image, size: int, channels: int) -> np.ndarray:
    """Centre-crop ``image`` to a square, resize to ``size``: uint8 ``(H, W, C)``."""
    image = image.convert("L" if channels == 1 else "RGB")
    w, h = image.size
    side = min(w, h)
    box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
    image = image.resize((size, size), Image.Resampling.BILINEAR, box=box, reducing_gap=3.0)
    return np.asarray(image, dtype=np.uint8).reshape(size, size, channels)  # (H, W, C)


def _video_images(path: Path) -> Iterator[Image.Image]:
    try:
        import av
    except ImportError as err:
        raise DataError(
            "reading video files needs PyAV: pip install 'dsvae[video]' (GIFs and folders of "
            "frame images work without it)"
        ) from err
    with av.open(str(path), mode="r", metadata_errors="ignore") as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        for frame in container.decode(container.streams.video[0]):
            yield frame.to_image()


def _gif_images(path: Path) -> Iterator[Image.Image]:
    with Image.open(path) as image:
        yield from ImageSequence.Iterator(image)


def _folder_images(source: Source) -> Iterator[Image.Image]:
    numbers = [_frame_number(p) for p in source.frames]
    unnumbered = [p.name for p, k in zip(source.frames, numbers, strict=True) if k is None]
    if unnumbered:
        raise ValueError(f"frame images must have a number in their names, e.g. {unnumbered[0]}")
    for _, path in sorted(zip(numbers, source.frames, strict=True)):
        with Image.open(path) as image:
            image.load()
            yield image


def source_frames(source: Source, size: int, channels: int) -> Iterator[np.ndarray]:
    """The frames of one source as uint8 ``(size, size, channels)`` arrays, in order."""
    if source.kind == "video":
        images = _video_images(source.path)
    elif source.kind == "gif":
        images = _gif_images(source.path)
    else:
        images = _folder_images(source)
    for image in images:
        yield square_frame(image, size, channels)


def windows(
    frames: Iterator[np.ndarray], length: int, stride: int
) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, window)`` for windows of ``length`` frames starting every ``stride`` frames."""
    recent: deque[np.ndarray] = deque(maxlen=length)
    for t, frame in enumerate(frames):
        recent.append(frame)
        start = t - length + 1
        if start >= 0 and start % stride == 0:
            yield start, np.stack(recent)  # (T, H, W, C)


class _NpyAppender:
    """A uint8 ``.npy`` file of ``(N, *shape)`` that grows by rows; N is written on close.

    Writes are unbuffered, so a full disk raises WriteError at the row that does not fit
    (and the rows before it stay as they were), not later in a flush.
    """

    def __init__(self, path: Path, shape: tuple[int, ...]) -> None:
        self.path, self.shape, self.count = path, shape, 0
        try:
            self._file: BinaryIO = open(path, "wb", buffering=0)  # noqa: SIM115 - closed by finish or close
        except OSError as err:
            raise write_error(err, path) from err
        try:
            self._write(self._header(0))
        except BaseException:
            self.close()
            raise

    def _header(self, n: int) -> bytes:
        text = repr({"descr": "|u1", "fortran_order": False, "shape": (n, *self.shape)})
        pad = _HEADER_BYTES - 10 - len(text) - 1
        return (
            b"\x93NUMPY\x01\x00"
            + (_HEADER_BYTES - 10).to_bytes(2, "little")
            + (text + " " * pad + "\n").encode("latin1")
        )

    def _write(self, data: bytes) -> None:
        """Write all of ``data`` (a raw write may take only part of it on a full disk)."""
        view = memoryview(data)
        try:
            while view:
                view = view[self._file.write(view) :]
        except OSError as err:
            raise write_error(err, self.path) from err

    def append(self, row: np.ndarray) -> None:
        self._write(np.ascontiguousarray(row, dtype=np.uint8).tobytes())
        self.count += 1

    def rewind(self, count: int) -> None:
        """Forget the rows after the first ``count`` (those of a source that failed)."""
        self._file.seek(_HEADER_BYTES + count * int(np.prod(self.shape)))
        self._file.truncate()
        self.count = count

    def finish(self) -> None:
        try:
            self._file.seek(0)
            self._write(self._header(self.count))
            os.fsync(self._file.fileno())
        except OSError as err:
            raise write_error(err, self.path) from err
        finally:
            self.close()

    def close(self) -> None:
        self._file.close()


def _warn(message: str) -> None:
    warnings.warn(message, UnreadableFileWarning, stacklevel=3)


def _read_source(
    source: Source,
    out: _NpyAppender,
    args: tuple[int, int, int, int],
    provenance: list[tuple[int, int]],
    index: int,
) -> None:
    """Append the windows of one source; on any failure, take its windows back out."""
    length, size, stride, channels = args
    before = out.count
    try:
        for start, window in windows(source_frames(source, size, channels), length, stride):
            out.append(window)
            provenance.append((index, start))
    except BaseException:
        out.rewind(before)
        del provenance[before:]
        raise


def import_videos(
    in_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    length: int,
    size: int,
    *,
    stride: int | None = None,
    channels: int = 3,
    strict: bool = False,
    overwrite: bool = False,
    show_progress: bool = False,
    warn: Callable[[str], None] = _warn,
) -> VideoImport:
    """Cut the videos under ``in_path`` into sequences and write a data set to ``out_dir``.

    ``stride`` defaults to ``length`` (windows that do not overlap). An unreadable file is
    skipped with ``warn(message)``, or raises :class:`DataError` with ``strict=True``. Nothing
    is left in ``out_dir`` unless the import completes.
    """
    stride = length if stride is None else stride
    check_video_args(length, size, stride, channels)
    root, out_dir = Path(in_path), Path(out_dir)
    sources = find_sources(root)
    check_target(out_dir, overwrite)
    args = (length, size, stride, channels)
    created = make_parents(out_dir)
    tmp_dir = None
    try:
        tmp_dir = make_sibling(out_dir, "tmp")
        with naming_target(tmp_dir, out_dir):
            out = _NpyAppender(tmp_dir / FRAMES_FILE, (length, size, size, channels))
            try:
                report = _import_sources(root, sources, out, args, strict, show_progress, warn)
            except BaseException:
                out.close()
                raise
            out.finish()
            names = [_relative(s.path, root) for s in sources]
            labels, meta = _labels_and_meta(root, names, report, args)
            atomic_save_npz(tmp_dir / LABELS_FILE, **labels)
            atomic_write_json(tmp_dir / META_FILE, meta)
            fsync_path(tmp_dir)
            commit_folder(tmp_dir, out_dir, overwrite)
    except BaseException:
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        if not out_dir.exists():
            remove_dirs(created)
        raise
    return VideoImport(
        out_dir,
        len(report["provenance"]),
        len(report["used"]),
        report["skipped"],
        report["too_short"],
    )


def _relative(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path != root and root.is_dir() else path.name


def _import_sources(
    root: Path,
    sources: list[Source],
    out: _NpyAppender,
    args: tuple[int, int, int, int],
    strict: bool,
    show_progress: bool,
    warn: Callable[[str], None],
) -> dict[str, Any]:
    length = args[0]
    provenance: list[tuple[int, int]] = []
    skipped, too_short, used = [], [], []
    # the bar shows on terminals only, so that logs do not fill with carriage returns
    bar = tqdm(sources, desc="video", unit="file", disable=None if show_progress else True)
    for index, source in enumerate(bar):
        name = _relative(source.path, root)
        before = out.count
        try:
            _read_source(source, out, args, provenance, index)
        except DsvaeError:  # a full disk, PyAV missing: not this file's fault
            raise
        except Exception as err:  # noqa: BLE001 - any decoder failure means an unreadable file
            reason = _reason(err)
            if strict:
                raise DataError(
                    f"cannot read {source.path} ({reason}); fix or remove it, or drop --strict "
                    "to skip unreadable files"
                ) from err
            skipped.append((name, reason))
            warn(f"skipped {source.path}: cannot read it ({reason})")
        else:
            (used if out.count > before else too_short).append(name)
        bar.set_postfix(sequences=out.count, skipped=len(skipped), refresh=False)
    bar.close()
    if not provenance:
        detail = f"{len(skipped)} unreadable, {len(too_short)} shorter than {length} frames"
        raise DataError(
            f"no sequence of {length} frames found in {root} ({len(sources)} sources: {detail}); "
            "lower --length or add longer videos"
        )
    return {"provenance": provenance, "skipped": skipped, "too_short": too_short, "used": used}


def _reason(err: Exception) -> str:
    """What went wrong, without the path (FFmpeg's messages repeat it)."""
    text = getattr(err, "strerror", None) or str(err) or "no details"
    return f"{type(err).__name__}: {text}"


def _labels_and_meta(
    root: Path, names: list[str], report: dict[str, Any], args: tuple[int, int, int, int]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    length, size, stride, channels = args
    from dsvae import __version__

    prov = np.asarray(report["provenance"], dtype=np.int64).reshape(-1, 2)  # (N, 2)
    labels = {
        "source": np.asarray([names[i] for i in prov[:, 0]], dtype=np.str_),
        "source_index": prov[:, 0].astype(np.int32),
        "start_frame": prov[:, 1],
    }
    n = len(prov)
    meta = {
        "name": "video",
        "source": f"imported from {root} by `dsvae data video`",
        "seed": None,
        "licence": LICENCE,
        "num_sequences": n,
        "length": length,
        "stride": stride,
        "size": size,
        "channels": channels,
        "sources": names,
        "skipped": [{"file": f, "reason": r} for f, r in report["skipped"]],
        "too_short": report["too_short"],
        "labels": {
            "source": "the file or frame folder, relative to the input folder",
            "source_index": "index into meta.sources",
            "start_frame": "index of the window's first frame in its source",
        },
        "frames_shape": [n, length, size, size, channels],
        "frames_dtype": "uint8",
        "created_by": f"dsvae {__version__}",
    }
    return labels, meta
