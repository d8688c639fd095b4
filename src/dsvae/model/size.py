"""How large a model a config asks for, known before any memory is spent on it.

A config (or a saved ``config.json``) may ask for sizes no machine holds: a latent of 10^9
dimensions, a hidden layer of 10^6 units. :func:`check_model_size` builds the model on
torch's ``meta`` device, where tensors have shapes but no storage, counts its parameters
and refuses a model above :data:`MAX_PARAMETERS` before the real one is allocated.
"""

from __future__ import annotations

import torch
from torch import nn

from dsvae.config import ModelConfig
from dsvae.errors import ConfigError
from dsvae.text_files import describe_size

MAX_PARAMETERS = 1 << 30
"""The most parameters a model may have (4 GiB as float32; the paper's models have a few
million)."""


def parameter_count(model_class: type[nn.Module], config: ModelConfig) -> int:
    """The number of parameters ``model_class(config)`` has, counted without allocating it."""
    with torch.device("meta"):
        model = model_class(config)
    return sum(p.numel() for p in model.parameters())


def check_model_size(model_class: type[nn.Module], config: ModelConfig) -> int:
    """Raise ConfigError unless ``model_class(config)`` has at most :data:`MAX_PARAMETERS`
    parameters; return the count."""
    try:
        count = parameter_count(model_class, config)
    except (RuntimeError, OverflowError, ValueError) as err:  # a size torch cannot represent
        raise ConfigError(
            f"the model config asks for sizes that cannot be built ({' '.join(str(err).split())}); "
            "lower model.f_dim, z_dim, hidden_dim or the frame network's widths"
        ) from err
    if count > MAX_PARAMETERS:
        raise ConfigError(
            f"the model would have {count:.3g} parameters ({describe_size(count * 4)} as "
            f"float32), more than the {MAX_PARAMETERS:.3g} allowed; lower model.f_dim, z_dim, "
            "hidden_dim or the frame network's widths"
        )
    return count
