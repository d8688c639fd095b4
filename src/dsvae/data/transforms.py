"""Model input from raw data and back: uint8 images <-> float frames in [0, 1].

:func:`prepare_frames` is the one conversion of a raw batch into model input;
:func:`model_frames` and :func:`model_batches` read sequences out of a (memory-mapped)
data set through it, and :func:`require_same_frames` is the check that a model suits the
data before any of it is read.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from dsvae.errors import DataError


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


def model_frames(frames: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
    """Raw frames (a slice of a data set's memory map) copied out as model input on ``device``."""
    batch = torch.from_numpy(np.array(frames))  # a copy: a memory map is read-only
    return prepare_frames(batch if device is None else batch.to(device))


def model_batches(
    dataset, batch_size: int, *, limit: int | None = None, device: torch.device | str | None = None
) -> Iterator[torch.Tensor]:
    """The first ``limit`` (default all) sequences of ``dataset`` as model input, in order,
    ``batch_size`` at a time: ``(B, T, C, H, W)`` or ``(B, T, D)``."""
    n = len(dataset) if limit is None else min(limit, len(dataset))
    for start in range(0, n, batch_size):
        yield model_frames(dataset.frames[start : min(n, start + batch_size)], device)


def require_same_frames(
    data_shape: tuple[int, ...],
    model_shape: tuple[int, ...],
    hint: str = "use a data set of the same frame size and channels",
    model: str = "the model",
) -> None:
    """Raise DataError unless a model of frames ``model_shape`` suits data of ``data_shape``."""
    if tuple(data_shape) != tuple(model_shape):
        raise DataError(
            f"the data set's frames are {list(data_shape)} but {model} was trained on "
            f"{list(model_shape)}; {hint}"
        )
