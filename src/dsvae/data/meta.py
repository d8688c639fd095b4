"""A data set's ``meta.json``: the keys dsvae relies on and what each must hold.

The file is written by :class:`~dsvae.data.storage.DatasetWriter` and may be edited by
hand or built by another program, so it is checked when read: a value of the wrong type
is refused here, naming the key, rather than failing later wherever it is used.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dsvae.errors import DataError

TEXT_KEYS = ("name", "source", "licence", "created_by", "frames_dtype")
"""Keys whose values are strings."""
MAPPING_KEYS = ("spectrogram", "factors", "labels", "synth")
"""Keys whose values are mappings (speech settings, drawn factors, ...)."""
FRAME_DTYPES = ("uint8", "float32")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_meta(
    meta: Any,
    where: str,
    shape: tuple[int, ...] | None = None,
    dtype: np.dtype | None = None,
) -> dict[str, Any]:
    """Return ``meta`` if its keys hold what they must; raise DataError naming the key.

    With ``shape`` (and ``dtype``), ``frames_shape`` (and ``frames_dtype``) must describe
    those frames.
    """
    if not isinstance(meta, dict):
        raise DataError(f"{where} must hold a JSON object, got {type(meta).__name__}")
    for key in TEXT_KEYS:
        if key in meta and not isinstance(meta[key], str):
            raise DataError(f"{where}: {key} must be a string, got {_show(meta[key])}")
    for key in MAPPING_KEYS:
        if key in meta and not isinstance(meta[key], dict):
            raise DataError(f"{where}: {key} must be a mapping, got {_show(meta[key])}")
    if meta.get("seed") is not None and not _is_int(meta["seed"]):
        raise DataError(f"{where}: seed must be an integer or null, got {_show(meta['seed'])}")
    speakers = meta.get("speakers", [])
    if not isinstance(speakers, list) or not all(isinstance(s, str) for s in speakers):
        raise DataError(f"{where}: speakers must be a list of names, got {_show(speakers)}")
    if "frames_shape" in meta:
        _check_shape(meta["frames_shape"], where, shape)
    if meta.get("frames_dtype", "uint8") not in FRAME_DTYPES:
        raise DataError(
            f"{where}: frames_dtype must be one of {list(FRAME_DTYPES)}, "
            f"got {_show(meta['frames_dtype'])}"
        )
    if dtype is not None and "frames_dtype" in meta and meta["frames_dtype"] != str(dtype):
        raise DataError(
            f"{where} says frames_dtype {meta['frames_dtype']} but frames.npy holds {dtype}; "
            "the folder is inconsistent, rebuild it"
        )
    return meta


def _check_shape(value: Any, where: str, shape: tuple[int, ...] | None) -> None:
    if not isinstance(value, list) or not value or not all(_is_int(v) and v > 0 for v in value):
        raise DataError(
            f"{where}: frames_shape must be a list of positive integers, got {_show(value)}"
        )
    if shape is not None and value != list(shape):
        raise DataError(
            f"{where} says frames_shape {value} but frames.npy has {list(shape)}; the folder "
            "is inconsistent, rebuild it"
        )
