"""The hardware and versions written next to every measured number."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from dsvae.errors import DsvaeError


def machine_description() -> dict:
    """Platform, processor, core count, torch version and threads, and the GPU if any."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` is the GPU when one is visible, else the CPU; other names pass through.

    Asking for CUDA on a machine without it is refused with a message, not a traceback.
    """
    name = device.type if isinstance(device, torch.device) else str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DsvaeError(f"--device {device}: no CUDA GPU is visible here; use --device cpu")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise DsvaeError(
            f"--device {device!r} is not a device name (auto, cpu, cuda, cuda:N)"
        ) from err


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block on one CPU thread, then restore the thread count.

    A small network trained in the block then gets the same weights whatever threads the
    caller set: summation order, and so rounding, depends on how work is split between
    threads, and training amplifies those differences.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
