"""Which model class a config builds: a registry keyed by ``model.dynamics``."""

from __future__ import annotations

from dsvae.choices import Dynamics, Registry
from dsvae.config import ModelConfig
from dsvae.model.deterministic import DeterministicSequenceVAE
from dsvae.model.dsvae import DSVAE
from dsvae.model.sequence import SequenceModel
from dsvae.model.size import check_model_size

MODELS: Registry[type[SequenceModel]] = Registry(
    "model.dynamics",
    Dynamics,
    {
        "stochastic": DSVAE,  # Eq. 1: the LSTM prior over z_t
        "lstm-f": DeterministicSequenceVAE,  # Sec. 4.3: h_0 = z
        "lstm-c": DeterministicSequenceVAE,  # Sec. 4.3: h_t = LSTM(h_{t-1}, z)
    },
)


def build_model(config: ModelConfig) -> SequenceModel:
    """The model for ``config``: the DSVAE, or a deterministic-dynamics baseline. Its size
    is checked first (:func:`~dsvae.model.size.check_model_size`)."""
    model_class = MODELS[config.dynamics]
    check_model_size(model_class, config)
    return model_class(config)
