"""The hardware and versions written next to every measured number."""

from __future__ import annotations

import os
import platform

import torch


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
