"""dsvae: the Disentangled Sequential Autoencoder (Li & Mandt, ICML 2018) for video and audio."""

from dsvae.config import ExperimentConfig, ModelConfig, TrainConfig, load_config
from dsvae.model import DSVAE, DSVAEOutput, load_model, save_model

__version__ = "0.1.0"

__all__ = [
    "DSVAE",
    "DSVAEOutput",
    "ExperimentConfig",
    "ModelConfig",
    "TrainConfig",
    "__version__",
    "load_config",
    "load_model",
    "save_model",
]
