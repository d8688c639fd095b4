"""Callbacks: pictures of the model while it trains."""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning.pytorch as pl
import torch

from dsvae.data import prepare_frames


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
