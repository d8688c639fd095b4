"""Training through Lightning: the wrapper module, data module and run folders."""

from dsvae.train.module import DSVAEModule, EpochSeededSampler, SequenceDataModule
from dsvae.train.run import TrainResult, train

__all__ = ["DSVAEModule", "EpochSeededSampler", "SequenceDataModule", "TrainResult", "train"]
