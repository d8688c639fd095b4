"""The on-disk data-set format, its atomic writer, and the torch ``Dataset`` that reads it.

A data set is a folder holding

* ``frames.npy``: uint8 images ``(N, T, H, W, C)`` with C in {1, 3}, or float32 feature
  vectors ``(N, T, D)``; read memory-mapped, so large sets do not fill memory;
* ``labels.npz``: any per-sequence labels, each array's first dim is N;
* ``meta.json``: at least ``name``, ``source``, ``seed``, ``licence``, ``frames_shape``,
  ``frames_dtype`` and ``created_by``.

A folder is written into a hidden sibling first and renamed into place when complete, so a
crash leaves the old folder (or none), never half of one.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import secrets
import shutil
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from dsvae.errors import DataError
from dsvae.io import atomic_save_npz, atomic_write_json, fsync_path

FRAMES_FILE = "frames.npy"
LABELS_FILE = "labels.npz"
META_FILE = "meta.json"
REQUIRED_META = ("name", "source", "seed", "licence")
_BUILD_HINT = "build one with `dsvae data bouncing-ball --out DIR`"
_ACCEPTED = "uint8 images (N, T, H, W, C) with C in {1, 3} or float32 vectors (N, T, D)"
# np.savez takes these as its own arguments, so they cannot name a label array.
_RESERVED_LABELS = ("file", "allow_pickle")


def _package_version() -> str:
    try:
        return importlib.metadata.version("dsvae")
    except importlib.metadata.PackageNotFoundError:
        return "dev"


def check_frames(shape: tuple[int, ...], dtype: np.dtype, where: str) -> None:
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


def _make_sibling(out_dir: Path, kind: str) -> Path:
    """Create the hidden folder ``.<name>.<kind>-<random>`` beside ``out_dir`` (umask applies)."""
    for _ in range(100):
        path = out_dir.parent / f".{out_dir.name}.{kind}-{secrets.token_hex(4)}"
        with contextlib.suppress(FileExistsError):
            path.mkdir()
            return path
    raise DataError(f"could not create a temporary folder beside {out_dir}; clean up .{kind}-*")


def check_target(
    out_dir: Path,
    overwrite: bool,
    markers: tuple[str, ...] = (FRAMES_FILE,),
    kind: str = "dsvae data set",
) -> None:
    """Raise DataError if writing to ``out_dir`` would clobber something it should not.

    A non-empty folder is replaced only with ``overwrite`` and only if it holds one
    of the ``markers`` (files that show it is a ``kind`` built by dsvae).
    """
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise DataError(f"{out_dir} exists and is not a folder; choose another folder")
    if not any(out_dir.iterdir()):
        return
    if not overwrite:
        raise DataError(f"{out_dir} exists; pass --overwrite or choose another folder")
    if not any((out_dir / marker).is_file() for marker in markers):
        raise DataError(
            f"{out_dir} is not empty and is not a {kind} (no {markers[0]}); "
            "refusing to replace it, choose another folder"
        )


def commit_folder(
    tmp_dir: Path,
    out_dir: Path,
    overwrite: bool,
    markers: tuple[str, ...] = (FRAMES_FILE,),
    kind: str = "dsvae data set",
) -> None:
    """Rename the complete ``tmp_dir`` onto ``out_dir``, replacing an old folder last."""
    check_target(out_dir, overwrite, markers, kind)
    old = None
    if out_dir.exists():
        if any(out_dir.iterdir()):
            old = _make_sibling(out_dir, "old")
            os.replace(out_dir, old / "data")
        else:
            out_dir.rmdir()
    try:
        os.rename(tmp_dir, out_dir)
    except BaseException:
        if old is not None:
            os.replace(old / "data", out_dir)
            old.rmdir()
        raise
    fsync_path(out_dir.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class DatasetWriter:
    """Stream frames into a new data set folder; commit it atomically on ``finish``.

    Frames go into an ``np.lib.format.open_memmap`` in a hidden temporary sibling
    ``.<name>.tmp-<random>`` of ``out_dir``, so a big set is never held in memory. Use as a
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
        check_frames(self.shape, self.dtype, f"frames for {self.out_dir}")
        check_target(self.out_dir, overwrite)
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        self.tmp_dir: Path | None = _make_sibling(self.out_dir, "tmp")
        self._written = np.zeros(self.shape[0], dtype=bool)
        try:
            self._frames = np.lib.format.open_memmap(
                self.tmp_dir / FRAMES_FILE, mode="w+", dtype=self.dtype, shape=self.shape
            )  # (N, T, H, W, C) or (N, T, D)
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
        return meta

    def abort(self) -> None:
        """Remove the temporary folder; ``out_dir`` is left as it was."""
        if self.tmp_dir is not None:
            self.__dict__.pop("_frames", None)
            shutil.rmtree(self.tmp_dir, ignore_errors=True)
            self.tmp_dir = None

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
    check_frames(frames.shape, frames.dtype, f"frames for {out_dir}")
    check_labels(labels, frames.shape[0], f"labels for {out_dir}")
    with DatasetWriter(out_dir, frames.shape[0], frames.shape[1:], frames.dtype, overwrite) as w:
        w.write(0, frames)
        return w.finish(labels, meta)


def _load_frames(path: Path) -> np.memmap:
    """Memory-map ``frames.npy``; raise DataError if it is missing, corrupt or malformed."""
    file = path / FRAMES_FILE
    if not file.is_file():
        raise DataError(f"{path} is not a dsvae data set: no {FRAMES_FILE}; {_BUILD_HINT}")
    try:
        frames = np.load(file, mmap_mode="r", allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - a damaged header fails in many ways
        raise DataError(
            f"could not read {file} ({err}); it must be a plain {_ACCEPTED} array saved with "
            f"numpy.save (no pickled objects); rebuild the data set"
        ) from err
    if not isinstance(frames, np.ndarray):
        raise DataError(f"{file} is not a .npy array file; rebuild the data set")
    check_frames(frames.shape, frames.dtype, str(file))
    return frames


def _load_labels(path: Path, n: int) -> dict[str, np.ndarray]:
    file = path / LABELS_FILE
    if not file.exists():
        return {}
    try:  # our own handle: numpy leaks it when the zip is damaged
        with open(file, "rb") as fh, np.load(fh, allow_pickle=False) as archive:
            labels = {name: archive[name] for name in archive.files}
    except Exception as err:  # noqa: BLE001 - BadZipFile, NotImplementedError, ...
        raise DataError(f"could not read {file} ({err}); rebuild the data set") from err
    return check_labels(labels, n, str(file))


def _load_meta(path: Path, shape: tuple[int, ...]) -> dict[str, Any]:
    file = path / META_FILE
    if not file.exists():
        return {}
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:
        raise DataError(f"{file} is not valid JSON ({err}); fix or rebuild it") from err
    if not isinstance(meta, dict):
        raise DataError(f"{file} must hold a JSON object, got {type(meta).__name__}")
    if "frames_shape" in meta and list(meta["frames_shape"]) != list(shape):
        raise DataError(
            f"{file} says frames_shape {meta['frames_shape']} but {FRAMES_FILE} has "
            f"{list(shape)}; the folder is inconsistent, rebuild it"
        )
    return meta


class SequenceDataset(Dataset):
    """A data set folder as a torch ``Dataset`` of raw sequences.

    ``ds[i]`` is a copy of sequence i: uint8 ``(T, H, W, C)`` for images, float32 ``(T, D)``
    for vectors; turn a batch into model input with :func:`prepare_frames`.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise DataError(f"data set folder {self.path} does not exist; {_BUILD_HINT}")
        if not self.path.is_dir():
            raise DataError(f"{self.path} is not a folder; pass the data set folder")
        self.frames = _load_frames(self.path)  # (N, T, H, W, C) or (N, T, D)
        self.labels = _load_labels(self.path, self.frames.shape[0])
        self.meta = _load_meta(self.path, self.frames.shape)

    @property
    def is_image(self) -> bool:
        """True for uint8 images, False for float32 feature vectors."""
        return self.frames.ndim == 5

    @property
    def num_sequences(self) -> int:
        return int(self.frames.shape[0])

    @property
    def length(self) -> int:
        """T, the number of frames per sequence."""
        return int(self.frames.shape[1])

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """Model-side shape of one frame: ``(C, H, W)`` for images, ``(D,)`` for vectors."""
        if self.is_image:
            _, _, h, w, c = self.frames.shape
            return (int(c), int(h), int(w))
        return (int(self.frames.shape[2]),)

    def __len__(self) -> int:
        return self.num_sequences

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self.frames[index]))  # (T, H, W, C) or (T, D)

    def __getstate__(self) -> dict[str, Any]:
        # Pickling a memmap would copy the whole array into each DataLoader worker; reopen it.
        return {"path": str(self.path)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])

    def __repr__(self) -> str:
        return f"SequenceDataset({str(self.path)!r}, frames={tuple(self.frames.shape)})"


class SequenceSubset(Dataset):
    """Some sequences of a :class:`SequenceDataset`, copied into memory, with their labels.

    It has what evaluations read from a data set (``frames``, ``labels``, ``meta``,
    ``path``, ``length``, ``frame_shape``), so a protocol written for a whole split runs
    on a part of one (e.g. the validation characters of the training split).
    ``indices`` are the positions of the kept sequences in the parent, in the order kept.
    """

    def __init__(self, dataset: SequenceDataset, indices: np.ndarray | list[int]) -> None:
        self.indices = np.asarray(indices, dtype=np.int64)
        if self.indices.ndim != 1 or not len(self.indices):
            raise DataError(f"a subset of {dataset.path} needs at least one sequence index")
        if self.indices.min() < 0 or self.indices.max() >= len(dataset):
            raise DataError(f"subset indices must be in 0..{len(dataset) - 1} for {dataset.path}")
        self.path = dataset.path
        self.meta = dataset.meta
        self.frames = np.asarray(dataset.frames[self.indices])  # a copy, not a memory map
        self.labels = {k: np.asarray(v)[self.indices] for k, v in dataset.labels.items()}

    is_image = SequenceDataset.is_image
    num_sequences = SequenceDataset.num_sequences
    length = SequenceDataset.length
    frame_shape = SequenceDataset.frame_shape

    def __len__(self) -> int:
        return self.num_sequences

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.frames[index].copy())

    def __repr__(self) -> str:
        return f"SequenceSubset({str(self.path)!r}, {len(self)} of its sequences)"


def load_dataset(path: str | os.PathLike) -> SequenceDataset:
    """Open the data set folder at ``path``; see :class:`SequenceDataset`."""
    return SequenceDataset(path)


def prepare_frames(batch: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """Raw batch to model input, on the batch's device.

    uint8 ``(B, T, H, W, C)`` becomes float32 ``(B, T, C, H, W)`` in [0, 1]; float
    ``(B, T, D)`` becomes float32 ``(B, T, D)``. With ``channels_last`` the images
    keep their NHWC memory layout (no copy before the conversion), which is what a
    channels-last convolution wants; the values are the same.
    """
    if batch.dtype == torch.uint8 and batch.ndim == 5:
        x = batch.permute(0, 1, 4, 2, 3)  # (B, T, C, H, W), a view
        if not channels_last:
            x = x.contiguous()
        return x.to(torch.float32).div_(255.0)
    if batch.is_floating_point() and batch.ndim == 3:
        return batch.to(torch.float32)  # (B, T, D)
    raise DataError(
        f"a batch must be uint8 (B, T, H, W, C) or float (B, T, D), got {batch.dtype} "
        f"of shape {tuple(batch.shape)}"
    )


def to_uint8_images(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Model-space images ``(..., C, H, W)`` in [0, 1] to uint8 ``(..., H, W, C)``, clipped."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float32).numpy()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 3 or x.shape[-3] not in (1, 3):
        raise DataError(f"images must be (..., C, H, W) with C in {{1, 3}}, got {x.shape}")
    x = np.nan_to_num(x, nan=0.0)
    x = np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.moveaxis(x, -3, -1)  # (..., H, W, C)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic random split of ``range(n)`` into sorted (train, validation) indices.

    The validation part has ``round(n * val_fraction)`` items, at least 1 when
    ``val_fraction > 0``, and the training part keeps at least 1.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if n < 1 or (val_fraction > 0 and n < 2):
        raise DataError(
            f"cannot split {n} sequences with val_fraction={val_fraction}; "
            "build a bigger data set or set val_fraction to 0"
        )
    n_val = 0 if val_fraction == 0 else min(n - 1, max(1, round(n * val_fraction)))
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def split_groups(
    groups: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split sequences by group (e.g. Sprites characters) into sorted (train, validation) indices.

    ``groups`` holds one label per sequence, shape (N,). ``round(G * val_fraction)`` of the
    G distinct groups (at least 1, and leaving at least 1) go to validation with all their
    sequences, so that no group is in both parts. Which groups are held out depends only on
    the sorted distinct labels and ``seed``, not on the order of the sequences.
    """
    groups = np.asarray(groups)
    if groups.ndim != 1:
        raise DataError(f"a group label must hold one value per sequence, got shape {groups.shape}")
    values = np.unique(groups)
    if val_fraction > 0 and len(values) < 2:
        raise DataError(
            f"cannot hold out groups: the label has {len(values)} distinct value(s); "
            "set train.val_group to null for a random split"
        )
    _, held = split_indices(len(values), val_fraction, seed)
    is_val = np.isin(groups, values[held])
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)
