"""The on-disk format of a data set folder: its writer and its readers.

A data set is a folder holding

* ``frames.npy``: uint8 images ``(N, T, H, W, C)`` with C in {1, 3}, or float32 feature
  vectors ``(N, T, D)``; read memory-mapped, so large sets do not fill memory;
* ``labels.npz``: any per-sequence labels, each array's first dim is N;
* ``meta.json``: at least ``name``, ``source``, ``seed``, ``licence``, ``frames_shape``,
  ``frames_dtype`` and ``created_by``.

A folder is written into a hidden sibling first and renamed into place when complete
(:mod:`dsvae.data.folders`). :class:`dsvae.data.dataset.SequenceDataset` reads one.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import shutil
import zipfile
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import numpy as np

from dsvae.atomic import (
    atomic_save_npz,
    atomic_write_json,
    check_free_space,
    fsync_path,
    preallocate,
    remove_dirs,
)
from dsvae.data.folders import (
    FRAMES_FILE,
    check_target,
    commit_folder,
    make_parents,
    make_sibling,
    naming_target,
)
from dsvae.data.meta import check_meta
from dsvae.errors import DataError, write_error
from dsvae.text_files import Refusal, describe_size, read_json

LABELS_FILE = "labels.npz"
META_FILE = "meta.json"
REQUIRED_META = ("name", "source", "seed", "licence")
BUILD_HINT = "build one with `dsvae data bouncing-ball --out DIR`"
_ACCEPTED = "uint8 images (N, T, H, W, C) with C in {1, 3} or float32 vectors (N, T, D)"
# np.savez takes these as its own arguments, so they cannot name a label array.
_RESERVED_LABELS = ("file", "allow_pickle")
MAX_LABEL_BYTES = 4 << 30
"""The most that ``labels.npz`` may unpack to (labels of a large set take a few MB)."""


def _package_version() -> str:
    try:
        return importlib.metadata.version("dsvae")
    except importlib.metadata.PackageNotFoundError:
        return "dev"


def check_frame_array(shape: tuple[int, ...], dtype: np.dtype, where: str) -> None:
    """Raise DataError unless ``shape``/``dtype`` describe valid frames (``where`` names them)."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        if len(shape) != 5:
            raise DataError(
                f"{where}: uint8 frames must have 5 dims (N, T, H, W, C), got shape {shape}"
            )
        if shape[4] not in (1, 3):
            raise DataError(
                f"{where}: images must have 1 (grey) or 3 (RGB) channels, got C={shape[4]} "
                f"in shape {shape}; drop the alpha channel or convert to RGB"
            )
    elif dtype == np.float32:
        if len(shape) != 3:
            raise DataError(
                f"{where}: float32 frames must have 3 dims (N, T, D), got shape {shape}; "
                "images must be stored as uint8"
            )
    else:
        raise DataError(f"{where}: frames have dtype {dtype}; accepted are {_ACCEPTED}")
    if min(shape) == 0:
        raise DataError(f"{where}: frames have shape {shape}; every dim must be at least 1")


def check_labels(labels: dict[str, np.ndarray], n: int, where: str) -> dict[str, np.ndarray]:
    """Return ``labels`` as numpy arrays; raise DataError unless each has first dim ``n``."""
    out = {}
    for name, value in labels.items():
        if not isinstance(name, str) or not name or name in _RESERVED_LABELS:
            raise DataError(f"{where}: {name!r} cannot name a label array; choose another name")
        array = np.asarray(value)
        if array.dtype == object:
            raise DataError(f"{where}: label {name!r} holds Python objects; use a numeric array")
        if array.ndim == 0 or array.shape[0] != n:
            raise DataError(
                f"{where}: label {name!r} has shape {array.shape}, but its first dim must be "
                f"the number of sequences N={n}"
            )
        out[name] = array
    return out


class DatasetWriter:
    """Stream frames into a new data set folder; commit it atomically on ``finish``.

    Frames go into an ``np.lib.format.open_memmap`` in a hidden temporary sibling
    ``.<name>.tmp-<random>`` of ``out_dir``, so a big set is never held in memory; the free
    space is checked and the file's blocks are reserved before the first write. Use as a
    context manager: leaving the block with an exception, or without calling ``finish``,
    removes the temporary folder and leaves ``out_dir`` untouched.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        n: int,
        frame_shape_per_sequence: tuple[int, ...],
        dtype: np.dtype | type = np.uint8,
        overwrite: bool = False,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.overwrite = overwrite
        self.shape = (int(n), *(int(s) for s in frame_shape_per_sequence))
        self.dtype = np.dtype(dtype)
        check_frame_array(self.shape, self.dtype, f"frames for {self.out_dir}")
        check_target(self.out_dir, overwrite)
        nbytes = int(np.prod(self.shape)) * self.dtype.itemsize
        check_free_space(self.out_dir, nbytes, f"{FRAMES_FILE} of shape {self.shape}")
        self._created = make_parents(self.out_dir)
        self.tmp_dir: Path | None = None
        self._written = np.zeros(self.shape[0], dtype=bool)
        try:
            self.tmp_dir = make_sibling(self.out_dir, "tmp")
            self._frames = _open_frames(self.tmp_dir / FRAMES_FILE, self.shape, self.dtype)
        except OSError as err:
            self.abort()
            raise write_error(err, self.out_dir / FRAMES_FILE) from err
        except BaseException:
            self.abort()
            raise

    def _require_open(self) -> Path:
        if self.tmp_dir is None:
            raise DataError("this DatasetWriter is closed; open a new one to write again")
        return self.tmp_dir

    def write(self, start_index: int, block: np.ndarray) -> None:
        """Store sequences ``start_index .. start_index + len(block)``."""
        self._require_open()
        block = np.asarray(block)  # (n, T, H, W, C) or (n, T, D)
        if block.dtype != self.dtype or block.ndim == 0 or block.shape[1:] != self.shape[1:]:
            raise DataError(
                f"block has dtype {block.dtype} and shape {block.shape}; the writer stores "
                f"{self.dtype} sequences of shape {self.shape[1:]}"
            )
        stop = start_index + block.shape[0]
        if start_index < 0 or stop > self.shape[0]:
            raise DataError(
                f"block covers sequences {start_index}..{stop - 1}, outside 0..{self.shape[0] - 1}"
            )
        self._frames[start_index:stop] = block
        self._written[start_index:stop] = True

    def finish(self, labels: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
        """Write labels and meta, then move the folder onto ``out_dir``; return ``out_dir``.

        If this fails the temporary folder is removed and the writer is closed.
        """
        tmp_dir = self._require_open()
        try:
            with naming_target(tmp_dir, self.out_dir):
                self._complete(tmp_dir, labels, meta)
                commit_folder(tmp_dir, self.out_dir, self.overwrite)
        except BaseException:
            self.abort()
            raise
        self.tmp_dir = None
        return self.out_dir

    def _complete(self, tmp_dir: Path, labels: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Check everything, then flush frames and write labels and meta into the temp folder."""
        if not self._written.all():
            missing = np.flatnonzero(~self._written)
            raise DataError(f"sequences {missing[:5].tolist()}... were never written")
        labels = check_labels(labels, self.shape[0], f"labels for {self.out_dir}")
        meta = self._full_meta(meta)
        self._frames.flush()
        del self._frames
        fsync_path(tmp_dir / FRAMES_FILE)
        atomic_save_npz(tmp_dir / LABELS_FILE, **labels)
        atomic_write_json(tmp_dir / META_FILE, meta)
        mode = (tmp_dir / FRAMES_FILE).stat().st_mode & 0o777  # as the umask allows
        for name in (LABELS_FILE, META_FILE):
            (tmp_dir / name).chmod(mode)
        fsync_path(tmp_dir)

    def _full_meta(self, meta: dict[str, Any]) -> dict[str, Any]:
        missing = [key for key in REQUIRED_META if key not in meta]
        if missing:
            raise DataError(f"meta for {self.out_dir} lacks {missing}; add them")
        meta = {
            **meta,
            "frames_shape": list(self.shape),
            "frames_dtype": str(self.dtype),
            "created_by": f"dsvae {_package_version()}",
        }
        try:
            json.dumps(meta)
        except (TypeError, ValueError) as err:
            raise DataError(f"meta for {self.out_dir} is not JSON-serialisable: {err}") from err
        return check_meta(meta, f"meta for {self.out_dir}")

    def abort(self) -> None:
        """Remove the temporary folder (and any parent folder made for it); ``out_dir`` is
        left as it was."""
        if self.tmp_dir is not None:
            self.__dict__.pop("_frames", None)
            shutil.rmtree(self.tmp_dir, ignore_errors=True)
            self.tmp_dir = None
        if not self.out_dir.exists():
            remove_dirs(self._created)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        unfinished = self.tmp_dir is not None
        self.abort()
        if unfinished and exc_type is None:
            raise DataError(
                f"DatasetWriter for {self.out_dir} closed without finish(); nothing written"
            )


def _open_frames(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> np.memmap:
    """A new ``.npy`` file of ``shape`` memory-mapped for writing, its blocks reserved on
    disk first: a full disk raises OSError here instead of SIGBUS in a later write."""
    frames = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)  # sparse
    with open(path, "rb+") as fh:
        preallocate(fh.fileno(), frames.offset, frames.offset + frames.nbytes)
    return frames


def write_dataset(
    out_dir: str | os.PathLike,
    frames: np.ndarray,
    labels: dict[str, np.ndarray],
    meta: dict[str, Any],
    *,
    overwrite: bool = False,
) -> Path:
    """Validate and write a data set folder atomically; return its path.

    ``frames`` is uint8 ``(N, T, H, W, C)`` or float32 ``(N, T, D)``. ``meta`` needs
    ``name``, ``source``, ``seed`` and ``licence``; shape, dtype and version are added.
    """
    frames = np.asarray(frames)
    check_frame_array(frames.shape, frames.dtype, f"frames for {out_dir}")
    check_labels(labels, frames.shape[0], f"labels for {out_dir}")
    with DatasetWriter(out_dir, frames.shape[0], frames.shape[1:], frames.dtype, overwrite) as w:
        w.write(0, frames)
        return w.finish(labels, meta)


def read_frames(path: Path) -> np.memmap:
    """Memory-map ``frames.npy``; raise DataError if it is missing, corrupt or malformed."""
    file = path / FRAMES_FILE
    if not file.is_file():
        raise DataError(f"{path} is not a dsvae data set: no {FRAMES_FILE}; {BUILD_HINT}")
    try:
        frames = np.load(file, mmap_mode="r", allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - a damaged header fails in many ways
        raise DataError(
            f"could not read {file} ({err}); it must be a plain {_ACCEPTED} array saved with "
            f"numpy.save (no pickled objects); rebuild the data set"
        ) from err
    if not isinstance(frames, np.ndarray):
        raise DataError(f"{file} is not a .npy array file; rebuild the data set")
    check_frame_array(frames.shape, frames.dtype, str(file))
    return frames


def read_labels(path: Path, n: int) -> dict[str, np.ndarray]:
    """``labels.npz`` ({} without one); every member's size is checked before it is read."""
    file = path / LABELS_FILE
    if not os.path.lexists(file):
        return {}
    if not file.is_file():
        raise DataError(f"{file} is not a regular file; rebuild the data set")
    try:  # our own handle: numpy leaks it when the zip is damaged
        with open(file, "rb") as fh:
            _check_members(file, fh)
            fh.seek(0)
            with np.load(fh, allow_pickle=False) as archive:
                labels = {name: archive[name] for name in archive.files}
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - BadZipFile, NotImplementedError, ...
        raise DataError(f"could not read {file} ({err}); rebuild the data set") from err
    return check_labels(labels, n, str(file))


def _check_members(file: Path, fh: BinaryIO) -> None:
    """Raise DataError unless every member of the zip ``fh`` is a ``.npy`` array whose
    header claims no more bytes than the member holds, and all of them together unpack to
    at most :data:`MAX_LABEL_BYTES`: a header that claims (20, 10^12) is refused before
    numpy allocates it, and a member that is not an array is never read whole."""
    with zipfile.ZipFile(fh) as archive:
        members = archive.infolist()
        total = sum(info.file_size for info in members)
        if total > MAX_LABEL_BYTES:
            raise DataError(
                f"{file} unpacks to {describe_size(total)}, more than the "
                f"{describe_size(MAX_LABEL_BYTES)} read for labels; rebuild the data set"
            )
        for info in members:
            with archive.open(info) as member:
                shape, dtype = _npy_header(member)
                held = info.file_size - member.tell()
            claimed = math.prod(shape) * dtype.itemsize
            if claimed > held:
                raise DataError(
                    f"{file}: member {info.filename} claims shape {shape} of {dtype} "
                    f"({describe_size(claimed)}) but holds {describe_size(held)}; "
                    "rebuild the data set"
                )


def _npy_header(member: BinaryIO) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the header of a ``.npy`` stream (ValueError if it is not one)."""
    version = np.lib.format.read_magic(member)
    readers = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }
    if version not in readers:
        raise ValueError(f".npy format version {version} is not read")
    shape, _, dtype = readers[version](member)
    return shape, dtype


def read_meta(path: Path, shape: tuple[int, ...], dtype: np.dtype | None = None) -> dict[str, Any]:
    """``meta.json`` ({} without one), checked against frames of ``shape`` and ``dtype``."""
    file = path / META_FILE
    if not os.path.lexists(file):
        return {}
    meta = read_json(file, refuse=Refusal(DataError, hint="fix or rebuild it"))
    return check_meta(meta, str(file), shape, dtype)
