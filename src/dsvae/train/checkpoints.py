"""Lightning checkpoint I/O that writes atomically and never unpickles code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from dsvae.atomic import atomic_path
from dsvae.errors import DsvaeError


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
