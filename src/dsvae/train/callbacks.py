"""Callbacks: pictures of the model while it trains; a stop at the first non-finite loss."""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning.pytorch as pl
import torch

from dsvae.data import prepare_frames
from dsvae.train.module import NonFiniteLossError


class PicturesCallback(pl.Callback):
    """Every ``every_n_epochs`` epochs, draw reconstructions and prior samples.

    The pictures go to ``RUN_DIR/pictures/epochNNNN/``; the sequences are the first
    ``n`` of the validation split (or of the training split when there is none),
    so successive epochs show the same data.
    """

    def __init__(self, out_dir: str | Path, every_n_epochs: int, n: int = 6, seed: int = 0) -> None:
        self.out_dir, self.every, self.n, self.seed = Path(out_dir), every_n_epochs, n, seed

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        if not trainer.is_global_zero or (epoch + 1) % self.every:
            return
        try:
            self._draw(trainer, pl_module, epoch)
        except Exception as err:  # noqa: BLE001 - a picture must never end a long run
            warnings.warn(f"could not draw the pictures of epoch {epoch}: {err}", stacklevel=1)

    def _draw(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int) -> None:
        from dsvae.showcase import write_generations, write_reconstructions

        data = trainer.datamodule
        subset = data.val_set if len(data.val_set) else data.train_set
        count = min(self.n, len(subset))
        x = prepare_frames(torch.stack([subset[i] for i in range(count)])).to(pl_module.device)
        folder = self.out_dir / f"epoch{epoch:04d}"
        model = pl_module.model
        write_reconstructions(model, x, folder)
        write_generations(model, count, x.shape[1], folder, seed=self.seed)


class NonFiniteLossGuard(pl.Callback):
    """Stop training at the first NaN or infinite loss, before any checkpoint can keep it.

    Every step's loss is checked on its device without waiting for it; the result is read
    every ``every_n_steps`` steps, before each checkpoint is written and when training ends.
    A checkpoint written after a bad step is therefore refused, and the one before it (the
    last good one) stays in the run folder.
    """

    def __init__(self, every_n_steps: int = 50) -> None:
        self.every = max(1, every_n_steps)
        self._first_bad: torch.Tensor | None = None  # () int64: first bad step, -1 if none
        self._step = 0
        self._last_good: int | None = None

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module, checkpoint: dict) -> None:
        self._last_good = int(checkpoint.get("global_step", 0))

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module, batch, batch_idx: int) -> None:
        self._step = trainer.global_step

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        loss = loss.detach()
        if self._first_bad is None or self._first_bad.device != loss.device:
            self._first_bad = torch.full((), -1, dtype=torch.int64, device=loss.device)
        bad = ~torch.isfinite(loss) & (self._first_bad < 0)
        self._first_bad = torch.where(bad, self._step, self._first_bad)
        if (self._step + 1) % self.every == 0:
            self.check()

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module, checkpoint: dict) -> None:
        self.check()  # raising here means the checkpoint is never written
        self._last_good = int(checkpoint.get("global_step", trainer.global_step))

    def on_train_end(self, trainer: pl.Trainer, pl_module) -> None:
        self.check()

    def check(self) -> None:
        """Raise :class:`NonFiniteLossError` if any step so far had a non-finite loss."""
        step = -1 if self._first_bad is None else int(self._first_bad)
        if step < 0:
            return
        kept = (
            "no checkpoint was written before it"
            if self._last_good is None
            else f"checkpoints/last.ckpt (step {self._last_good}) is the last good checkpoint"
        )
        raise NonFiniteLossError(
            f"the loss became NaN or infinite at step {step}; training stopped and {kept}. "
            "Check the data for NaN/inf values, lower train.lr or set train.grad_clip, then "
            "resume with --resume"
        )
