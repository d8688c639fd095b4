"""The DSVAE model: networks named after the distributions they parameterise."""

from dsvae.model.deterministic import DeterministicDynamics, DeterministicSequenceVAE
from dsvae.model.distributions import FrameLikelihood, diag_gaussian, rsample
from dsvae.model.dsvae import DSVAE
from dsvae.model.frames import (
    ConvFrameDecoder,
    ConvFrameEncoder,
    MlpFrameDecoder,
    MlpFrameEncoder,
)
from dsvae.model.posteriors import (
    FactorisedDynamicsPosterior,
    FullDynamicsPosterior,
    StaticPosterior,
)
from dsvae.model.prior import DynamicsPrior
from dsvae.model.registry import MODELS, build_model
from dsvae.model.saved import load_model, save_model
from dsvae.model.sequence import DSVAEOutput, SequenceModel

__all__ = [
    "DSVAE",
    "MODELS",
    "DeterministicDynamics",
    "DeterministicSequenceVAE",
    "build_model",
    "ConvFrameDecoder",
    "ConvFrameEncoder",
    "DSVAEOutput",
    "DynamicsPrior",
    "FactorisedDynamicsPosterior",
    "FrameLikelihood",
    "FullDynamicsPosterior",
    "MlpFrameDecoder",
    "MlpFrameEncoder",
    "SequenceModel",
    "StaticPosterior",
    "diag_gaussian",
    "load_model",
    "rsample",
    "save_model",
]
