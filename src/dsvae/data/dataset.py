"""A data set folder (:mod:`dsvae.data.storage`) as a torch ``Dataset``, whole or in part."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from dsvae.data.storage import BUILD_HINT, read_frames, read_labels, read_meta
from dsvae.errors import DataError


class _Frames:
    """What both views of a data set say about their ``frames`` array."""

    frames: np.ndarray  # (N, T, H, W, C) uint8 or (N, T, D) float32

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


class SequenceDataset(_Frames, Dataset):
    """A data set folder as a torch ``Dataset`` of raw sequences.

    ``ds[i]`` is a copy of sequence i: uint8 ``(T, H, W, C)`` for images, float32 ``(T, D)``
    for vectors; turn a batch into model input with :func:`prepare_frames`.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise DataError(f"data set folder {self.path} does not exist; {BUILD_HINT}")
        if not self.path.is_dir():
            raise DataError(f"{self.path} is not a folder; pass the data set folder")
        self.frames = read_frames(self.path)  # (N, T, H, W, C) or (N, T, D)
        self.labels = read_labels(self.path, self.frames.shape[0])
        self.meta = read_meta(self.path, self.frames.shape, self.frames.dtype)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self.frames[index]))  # (T, H, W, C) or (T, D)

    def __getstate__(self) -> dict[str, Any]:
        # Pickling a memmap would copy the whole array into each DataLoader worker; reopen it.
        return {"path": str(self.path)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])

    def __repr__(self) -> str:
        return f"SequenceDataset({str(self.path)!r}, frames={tuple(self.frames.shape)})"


class SequenceSubset(_Frames, Dataset):
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

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.frames[index].copy())

    def __repr__(self) -> str:
        return f"SequenceSubset({str(self.path)!r}, {len(self)} of its sequences)"
