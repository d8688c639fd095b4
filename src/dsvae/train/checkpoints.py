"""Lightning checkpoint I/O that writes atomically and never unpickles code, and the checks
that a checkpoint holds what an export (the weights) or a resume (everything) needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from dsvae.atomic import atomic_path
from dsvae.errors import DsvaeError

RESUME_KEYS: dict[str, type | tuple[type, ...]] = {
    "state_dict": dict,
    "optimizer_states": list,
    "lr_schedulers": list,
    "loops": dict,
    "callbacks": dict,
    "epoch": int,
    "global_step": int,
    "pytorch-lightning_version": str,
}
"""What Lightning reads from a checkpoint to resume a run, and the type of each."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Save to a temporary file, fsync, rename: a kill mid-write leaves the old checkpoint.

    Loading uses ``torch.load(weights_only=True)``: tensors and plain containers
    only, so a tampered checkpoint cannot run code.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO does not take storage_options")
        with atomic_path(Path(path)) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(
        self,
        path: Any,
        map_location: Any = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        path = Path(path)
        if not path.is_file():
            raise DsvaeError(f"checkpoint {path} does not exist")
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except Exception as err:  # noqa: BLE001 - any failure means an unusable file
            raise DsvaeError(f"checkpoint {path} cannot be loaded safely ({_reason(err)})") from err


def _reason(err: Exception) -> str:
    """The gist of a failed load: torch's weights-only refusal is a page long."""
    text = str(err)
    for line in text.splitlines():
        if "WeightsUnpickler error:" in line:
            gist = line.split("WeightsUnpickler error:", 1)[1].split(". ")[0].strip()
            return f"it holds code or objects, not only tensors: {gist}"
    return text.splitlines()[0].split(". ")[0] if text else type(err).__name__


def checkpoint_weights(state: Any, path: Path) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of a loaded checkpoint; DsvaeError if it has none, or one that is
    not a mapping of names to tensors."""
    weights = state.get("state_dict") if isinstance(state, dict) else None
    if not isinstance(weights, dict):
        found = "none" if weights is None else f"a {type(weights).__name__}"
        raise DsvaeError(
            f"checkpoint {path} holds no weights (its state_dict is {found}); it was not "
            "written by dsvae train"
        )
    bad = [
        k for k, v in weights.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))
    ]
    if bad:
        raise DsvaeError(f"checkpoint {path}: state_dict entry {bad[0]!r} is not a tensor")
    return weights


def inspect_checkpoint(path: Path) -> tuple[int | None, str | None]:
    """``(global_step, None)`` for a checkpoint a run can resume from, else ``(None, why
    not)``. Loaded memory-mapped: the tensors are read only to check they are finite."""
    if not path.is_file():
        return None, "is not a regular file"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # noqa: BLE001 - any failure means an unusable file
        return None, f"cannot be loaded safely ({_reason(err)})"
    problem = resume_problem(state)
    return (None, problem) if problem else (state["global_step"], None)


def resume_problem(state: Any) -> str | None:
    """Why a loaded checkpoint cannot be resumed from (None: it can): the keys of
    :data:`RESUME_KEYS` it lacks, one of the wrong type, or a weight that is not finite."""
    if not isinstance(state, dict):
        return f"holds a {type(state).__name__}, not a checkpoint"
    missing = [key for key in RESUME_KEYS if key not in state]
    if missing:
        return f"is incomplete: it lacks {', '.join(map(repr, missing))}, which a resume needs"
    for key, kind in RESUME_KEYS.items():
        if not isinstance(state[key], kind) or isinstance(state[key], bool):
            return f"is damaged: {key} must be of type {kind.__name__}, got {_short(state[key])}"
    for name, value in state["state_dict"].items():
        if not isinstance(value, torch.Tensor):
            return f"is damaged: state_dict entry {name!r} is not a tensor"
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            return f"holds NaN or infinite values in {name}"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
