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


class DisentanglementProbe(pl.Callback):
    """Every ``every_n_epochs`` epochs, score the model with a judge on validation characters.

    The numbers are :func:`dsvae.eval.sprites.probe` (Table 1 rows, the later-work action
    Acc and the inferred-factor swap diagnostic) on the first ``characters`` characters of
    the run's validation split (9 sequences each; the same ones every time). They go into
    metrics.csv as ``probe/...`` columns at the epoch's last step, and the curves are drawn
    to ``RUN_DIR/disentanglement.png``. Only rank 0 measures; the training's random state is
    left as it was, so a run with the probe trains exactly as one without.
    """

    def __init__(
        self,
        judge_dir: str | Path,
        run_dir: str | Path,
        every_n_epochs: int = 1,
        characters: int = 32,
        seed: int = 0,
    ) -> None:
        from dsvae.eval.judge import read_judge_json

        read_judge_json(judge_dir)  # a missing or damaged judge fails before training starts
        self.judge_dir, self.run_dir = Path(judge_dir), Path(run_dir)
        self.every, self.characters, self.seed = max(1, every_n_epochs), characters, seed
        self._judge = None
        self._data = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        from dsvae.eval.judge import check_frame_shape, load_judge
        from dsvae.eval.sprites_splits import validation_split

        if not trainer.is_global_zero:
            return
        datamodule = trainer.datamodule
        self._data = validation_split(
            datamodule.dataset.path, pl_module.train_cfg, characters=self.characters
        )
        self._judge = load_judge(self.judge_dir, pl_module.device)
        check_frame_shape(self._judge, self._data.frame_shape)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        if not trainer.is_global_zero or (epoch + 1) % self.every or self._data is None:
            return
        from dsvae.eval.sprites import probe

        self._judge.to(pl_module.device)
        row = probe(pl_module.model, self._judge, self._data, seed=self.seed)
        for logger in trainer.loggers:
            logger.log_metrics({**row, "epoch": epoch}, step=trainer.global_step)
            logger.save()
        try:
            plot_probe(self.run_dir / "metrics.csv", self.run_dir / "disentanglement.png")
        except Exception as err:  # noqa: BLE001 - a picture must never end a long run
            warnings.warn(f"could not draw the disentanglement curves: {err}", stacklevel=1)


def plot_probe(metrics_csv: str | Path, out: str | Path) -> Path | None:
    """Draw the ``probe/...`` columns of a run's metrics.csv against epochs (None if none)."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dsvae.viz import save_figure

    with open(metrics_csv, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("probe/skin")]
    if not rows:
        return None
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name in ("skin", "pants", "tops", "hair", "action", "motion", "direction"):
        style = "--" if name in ("motion", "direction") else "-"
        left.plot(epochs, [100 * float(r[f"probe/{name}"]) for r in rows], style, label=name)
    left.set(title="Table 1 disagreement (validation characters)", xlabel="epoch", ylabel="%")
    for name in ("skin", "pants", "hair", "direction"):
        right.plot(
            epochs, [100 * float(r[f"probe/swap_{name}"]) for r in rows], label=f"swap {name}"
        )
    right.plot(
        epochs, [100 * float(r["probe/action_acc"]) for r in rows], "k-", lw=2, label="action Acc"
    )
    right.set(
        title="swap diagnostic (disagreement) and later-work action Acc", xlabel="epoch", ylabel="%"
    )
    for ax in (left, right):
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out)
