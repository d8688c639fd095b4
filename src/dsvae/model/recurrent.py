"""Recurrent layers that also run under CPU autocast.

oneDNN builds a bf16 LSTM/RNN kernel only on CPUs with native bf16 support (AVX-512
BF16 or AMX); elsewhere ``torch.autocast("cpu", dtype=torch.bfloat16)`` makes
``nn.LSTM`` fail. These subclasses run the recurrence in float32 when CPU autocast
is on, and leave everything else (including cuDNN's bf16 path on a GPU) unchanged.
Their parameters and state-dict keys are those of ``nn.LSTM`` / ``nn.RNN``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence


def _float(x):
    if x is None:
        return None
    if isinstance(x, PackedSequence):
        return x._replace(data=x.data.float())
    if isinstance(x, tuple):
        return tuple(_float(t) for t in x)
    return x.float()


class _CpuAutocastSafe:
    def forward(self, input, hx=None):
        if self.weight_ih_l0.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return super().forward(_float(input), _float(hx))
        return super().forward(input, hx)


class LSTM(_CpuAutocastSafe, nn.LSTM):
    """``nn.LSTM`` that runs in float32 under CPU autocast."""


class RNN(_CpuAutocastSafe, nn.RNN):
    """``nn.RNN`` that runs in float32 under CPU autocast."""
