"""The Lightning wrapper: a thin LightningModule and a LightningDataModule.

The model knows nothing about loops or devices, and the loss is the objective's
(:mod:`dsvae.model.objective`); this module adds the optimiser (Adam, as in the paper),
the speed settings, logging, and keeps the random state in checkpoints so that a
resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Sampler, Subset

from dsvae.config import ExperimentConfig, TrainConfig
from dsvae.data import SequenceDataset, prepare_frames, split_groups, split_indices
from dsvae.errors import ConfigError, DsvaeError
from dsvae.model import build_model
from dsvae.model.objective import ELBO_TERMS, Objective, extra_term_names
from dsvae.train.csv_log import RunCSVLogger
from dsvae.train.schedule import build_scheduler, is_scheduled, peak_lr

TERMS = ("loss", *ELBO_TERMS)
METRICS = tuple(f"train/{t}" for t in TERMS) + tuple(f"val/{t}" for t in TERMS[1:])
LR_COLUMN = "train/lr"


def logs_lr(cfg: TrainConfig) -> bool:
    """Whether the learning rate differs from ``train.lr`` at some step (then metrics.csv
    has a ``train/lr`` column)."""
    return is_scheduled(cfg) or cfg.lr_reference_batch is not None


def metric_names(cfg: TrainConfig) -> tuple[str, ...]:
    """The columns of a run's metrics.csv under this training config."""
    extra = extra_term_names(cfg)
    extra_columns = tuple(f"{stage}/{name}" for name in extra for stage in ("train", "val"))
    return METRICS + extra_columns + (LR_COLUMN,) * logs_lr(cfg)


class NonFiniteLossError(DsvaeError):
    """Training produced a NaN or infinite loss (raised by ``NonFiniteLossGuard``)."""


class DSVAEModule(pl.LightningModule):
    """Trains a :class:`DSVAE` (or a baseline) by minimising its :class:`Objective` with Adam.

    By default the objective is -ELBO (Eq. 2); the config can weight the KL terms and
    add the MI and contrastive terms. ``objective`` is the one :func:`dsvae.train.train`
    built and checked for the data set; without it the module builds one from the
    config and fills in the data-dependent part when fitting starts.
    """

    def __init__(self, config: ExperimentConfig, objective: Objective | None = None) -> None:
        super().__init__()
        self.config = config
        self.model = build_model(config.model)
        self.objective = Objective.build(config) if objective is None else objective
        self.channels_last = False
        # the model the training step calls: self.model, or its torch.compile wrapper
        # (kept out of the module tree so that checkpoints hold self.model's keys only)
        object.__setattr__(self, "step_model", self.model)
        self.device_frames: torch.Tensor | None = None

    @property
    def train_cfg(self) -> TrainConfig:
        return self.config.train

    def setup(self, stage: str) -> None:
        """Apply the speed settings for the device the run uses (before the optimiser exists)."""
        cfg = self.train_cfg
        cuda = self.trainer.strategy.root_device.type == "cuda"
        if cuda:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            # the shapes are fixed: cuDNN's autotuning is paid once, in the first steps
            torch.backends.cudnn.benchmark = True
        conv = self.model.config.frames.kind == "conv"
        self.channels_last = conv and (cuda if cfg.channels_last is None else cfg.channels_last)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if cfg.torch_compile:
            compiled = torch.compile(self.model, mode=cfg.compile_mode)
            object.__setattr__(self, "step_model", compiled)

    def on_fit_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if isinstance(datamodule, SequenceDataModule) and datamodule.on_device:
            self.device_frames = datamodule.train_frames().to(self.device)
        if self.objective.needs_data:
            if not isinstance(datamodule, SequenceDataModule):
                raise ConfigError(
                    "train.contrast_weight needs a dsvae data set (SequenceDataModule)"
                )
            data = datamodule.dataset
            self.objective = Objective.build(self.config, data.frame_shape, data.meta)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        return self._common_step(batch, batch_idx, "train")

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self._common_step(batch, batch_idx, "val")

    def _common_step(self, batch: torch.Tensor, batch_idx: int, stage: str) -> torch.Tensor:
        """The objective of one batch, its terms logged as ``{stage}/{term}``.

        Training draws its noise from the global random state (which checkpoints keep)
        and logs every step, the loss included; a NaN or infinite loss is caught by
        callbacks.NonFiniteLossGuard. Validation draws from a fixed generator per batch,
        the same noise every epoch with the global random state untouched, and logs
        epoch means of the ELBO's parts and the extra terms (returning their weighted sum).
        """
        train = stage == "train"
        if train and self.device_frames is not None:  # data_on_device: the batch holds indices
            batch = self.device_frames[batch]
        # (B, T, ...) uint8 -> float, converted on the device
        x = prepare_frames(batch, self.channels_last)
        if train:
            out = self.step_model(x)
            loss, extra = self.objective(self.model, x, out, self.global_step)
            terms = {"loss": loss, **out.terms, **extra}
        else:  # the ELBO's parts and the extra terms; the loss depends on the step
            gen = torch.Generator(self.device).manual_seed(self.train_cfg.seed + batch_idx)
            out = self.model(x, generator=gen)
            extra, loss = self.objective.extra_terms(self.model, x, out, gen)
            terms = {**out.terms, **extra}
        self._log_terms(stage, terms, batch.shape[0], on_step=train)
        if train and logs_lr(self.train_cfg):  # the rate this step uses
            lr = self.trainer.optimizers[0].param_groups[0]["lr"]
            self.log(LR_COLUMN, lr, on_step=True, on_epoch=False, batch_size=batch.shape[0])
        return loss

    def _log_terms(self, stage: str, terms: dict, batch_size: int, on_step: bool) -> None:
        for name, value in terms.items():
            self.log(
                f"{stage}/{name}",
                value.detach(),
                on_step=on_step,
                on_epoch=not on_step,
                prog_bar=name == "elbo",
                batch_size=batch_size,
                sync_dist=not on_step,
            )

    def configure_optimizers(self) -> torch.optim.Optimizer | dict:
        """Adam at the peak rate (:func:`~dsvae.train.schedule.peak_lr`), and with a warm-up
        or a cosine a scheduler stepped after every optimiser step (none otherwise)."""
        cfg = self.train_cfg
        fused = cfg.fused_adam
        if fused is None:
            fused = self.trainer.strategy.root_device.type == "cuda"
        lr = peak_lr(cfg, self.trainer.world_size)
        optimizer = torch.optim.Adam(self.model.parameters(), lr=lr, fused=fused)
        if not is_scheduled(cfg):
            return optimizer
        # max_steps, or max_epochs x the batches per epoch (per process under DDP)
        total = int(self.trainer.estimated_stepping_batches)
        if cfg.lr_schedule != "constant" and cfg.max_time_minutes is not None and cfg.max_steps < 0:
            rank_zero_warn(
                f"train.lr_schedule={cfg.lr_schedule} decays over {total} steps "
                f"(train.max_epochs), but train.max_time_minutes may stop the run before; "
                "set train.max_steps to the steps that fit so that the decay ends with the run"
            )
        scheduler = build_scheduler(optimizer, cfg, total)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["dsvae_rng"] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["dsvae_rng"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        for logger in self.loggers:
            if isinstance(logger, RunCSVLogger):
                logger.truncate_after(int(checkpoint.get("global_step", 0)))
        rng = checkpoint.get("dsvae_rng", {})
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])


def train_val_indices(dataset: SequenceDataset, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """The sorted (train, validation) sequence indices that ``cfg`` gives on ``dataset``.

    A random ``val_fraction`` of the sequences, or, with ``val_group``, of the distinct
    values of that label (see :func:`dsvae.data.split_groups`); seeded by ``val_seed``
    (``seed`` when unset). Training and every evaluation of the validation part use this.
    """
    n = len(dataset)
    seed = cfg.seed if cfg.val_seed is None else cfg.val_seed
    if cfg.val_fraction == 0:
        return np.arange(n), np.arange(0)
    if cfg.val_group is None:
        return split_indices(n, cfg.val_fraction, seed)
    if cfg.val_group not in dataset.labels:
        have = sorted(dataset.labels) or "none"
        raise ConfigError(
            f"train.val_group is {cfg.val_group!r} but {dataset.path} has no such label "
            f"(labels: {have}); set train.val_group to one of them or to null"
        )
    return split_groups(dataset.labels[cfg.val_group], cfg.val_fraction, seed)


class EpochSeededSampler(Sampler[int]):
    """Shuffles ``indices`` with a permutation that depends only on (seed, epoch).

    Lightning calls :meth:`set_epoch` before each epoch, so a run resumed at an
    epoch boundary sees the same order as one that never stopped.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=gen).tolist())

    def __len__(self) -> int:
        return self.size


class SequenceDataModule(pl.LightningDataModule):
    """Loads a data-set folder and splits it into training and validation sequences."""

    def __init__(self, data_dir: str, config: TrainConfig) -> None:
        super().__init__()
        self.cfg = config
        self.dataset = SequenceDataset(data_dir)
        train_idx, val_idx = train_val_indices(self.dataset, config)
        self.train_set = Subset(self.dataset, train_idx.tolist())
        self.val_set = Subset(self.dataset, val_idx.tolist())
        self.on_device = bool(config.data_on_device)

    def setup(self, stage: str) -> None:
        if self.cfg.data_on_device is None and self.trainer is not None:
            device = self.trainer.strategy.root_device
            if device.type == "cuda":
                frames = self.dataset.frames
                size = frames.itemsize * len(self.train_set) * int(np.prod(frames.shape[1:]))
                self.on_device = size < torch.cuda.get_device_properties(device).total_memory / 4

    def _loader(
        self, dataset: Subset | range, sampler: Sampler | None, shuffle: bool
    ) -> DataLoader:
        workers = self.cfg.num_workers
        return DataLoader(
            dataset,
            batch_size=self.cfg.batch_size,
            sampler=sampler,
            shuffle=shuffle,
            num_workers=workers,
            persistent_workers=workers > 0,
            drop_last=False,
        )

    def train_frames(self) -> torch.Tensor:
        """Every training sequence in one uint8 tensor (for ``train.data_on_device``)."""
        return torch.from_numpy(np.asarray(self.dataset.frames[self.train_set.indices]))

    def train_dataloader(self) -> DataLoader:
        # with data_on_device the loader yields positions in train_frames(), not frames
        data = range(len(self.train_set)) if self.on_device else self.train_set
        if self.trainer is not None and self.trainer.world_size > 1:
            # Lightning swaps in a DistributedSampler, seeded and set per epoch
            return self._loader(data, None, shuffle=True)
        return self._loader(data, EpochSeededSampler(len(self.train_set), self.cfg.seed), False)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val_set, None, shuffle=False) if len(self.val_set) else []
