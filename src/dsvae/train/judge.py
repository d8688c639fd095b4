"""Training the Sprites judge (:mod:`dsvae.eval.judge`) with Lightning, like the models.

:class:`JudgeModule` is its LightningModule (cross-entropy summed over the heads);
:func:`train_judge` fits it on a labelled split with the progress bar and quiet set-up of
:mod:`dsvae.train.run` and saves it with :func:`dsvae.eval.judge.save_judge`.
:func:`train_sprites_judge` is ``dsvae judge sprites``: train on ``DIR/train``, measure on
``DIR/test``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from dsvae.atomic import atomic_write_json
from dsvae.data import SequenceDataset, prepare_frames, split_indices
from dsvae.data.folders import check_target
from dsvae.errors import ConfigError, DataError, DsvaeError
from dsvae.eval.judge import (
    CONFIG_FILE,
    JudgeConfig,
    SpritesJudge,
    judge_accuracy,
    save_judge,
    sprites_labels,
)

TEST_ACCURACY_FILE = "test_accuracy.json"


class LabelledSequences(Dataset):
    """``(frames uint8 (T, H, W, C), attributes (A,), action ())`` for the given sequences."""

    def __init__(self, dataset: SequenceDataset, config: JudgeConfig, indices: np.ndarray) -> None:
        self.dataset, self.indices = dataset, np.asarray(indices, dtype=np.int64)
        self.attributes, self.action = sprites_labels(dataset, config)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        j = int(self.indices[i])
        return (
            self.dataset[j],
            torch.from_numpy(self.attributes[j]),
            torch.tensor(self.action[j]),
        )


def _loss_and_correct(
    judge: SpritesJudge, batch: tuple[torch.Tensor, ...]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Cross-entropy summed over the heads, and the number of correct predictions per head."""
    frames, attributes, action = batch
    logits = judge(prepare_frames(frames))  # uint8 (B, T, H, W, C) -> float (B, T, C, H, W)
    t = frames.shape[1]
    targets = {
        name: attributes[:, i, None].expand(-1, t)  # (B, T): the label holds for every frame
        for i, (name, _) in enumerate(judge.config.attributes)
    }
    targets["action"] = action  # (B,)
    losses = [F.cross_entropy(logits[k].flatten(0, -2), y.flatten()) for k, y in targets.items()]
    correct = {k: (logits[k].argmax(-1) == y).sum() for k, y in targets.items()}
    return torch.stack(losses).sum(), correct


class JudgeModule(pl.LightningModule):
    """Trains a :class:`SpritesJudge` (cross-entropy summed over the heads); records validation accuracy."""

    def __init__(self, config: JudgeConfig, lr: float) -> None:
        super().__init__()
        self.judge, self.lr = SpritesJudge(config), lr
        self.history: list[dict[str, float]] = []
        self._correct: dict[str, float] = {}
        self._seen: dict[str, int] = {}

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        loss, _ = _loss_and_correct(self.judge, batch)
        if not torch.isfinite(loss):
            raise DsvaeError(f"the judge's loss became {loss.item()}; lower lr")
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=batch[0].shape[0])
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        _, correct = _loss_and_correct(self.judge, batch)
        b, t = batch[0].shape[:2]
        for name, c in correct.items():
            self._correct[name] = self._correct.get(name, 0) + int(c)
            self._seen[name] = self._seen.get(name, 0) + (b if name == "action" else b * t)

    def on_validation_epoch_end(self) -> None:
        acc = {f"val/{k}": self._correct[k] / self._seen[k] for k in self._correct}
        self._correct, self._seen = {}, {}
        if acc:
            self.log_dict(acc, prog_bar=True)
            self.history.append({"epoch": self.current_epoch + 1, **acc})

    def configure_optimizers(self) -> dict[str, Any]:
        """Adam with the learning rate decayed to 0 along a cosine over the whole run."""
        optimizer = torch.optim.Adam(self.judge.parameters(), lr=self.lr)
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


@dataclass
class JudgeResult:
    """A trained judge, where it was saved, and how it did on the held-out sequences."""

    out_dir: Path
    judge: SpritesJudge
    val_accuracy: dict[str, float]
    epochs: int
    wall_time_s: float
    history: list[dict[str, float]]


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    """Refuse to write a judge over a folder that is not one (or without ``overwrite``)."""
    check_target(
        out_dir,
        overwrite,
        (CONFIG_FILE,),
        occupied="exists and is not empty",
        option="overwrite=True",
        not_ours=f"holds no judge ({CONFIG_FILE})",
    )


def train_judge(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    config: JudgeConfig | None = None,
    epochs: int = 2,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    accelerator: str = "auto",
    progress_bar: bool = True,
    val_fraction: float = 0.05,
    overwrite: bool = False,
) -> JudgeResult:
    """Train the judge on the labelled sequences in ``data_dir`` and save it to ``out_dir``.

    ``val_fraction`` of the sequences are held out; their accuracy per head after each epoch
    goes into ``judge.json``. The defaults read every head of the Sprites test split with
    100% accuracy after 2 epochs (13 minutes on a busy 2-core CPU). Raises DataError for data without Sprites labels or with frames
    of another shape than ``config.frame_shape``.
    """
    from dsvae.train.run import ProgressBar, quiet_lightning

    config = config or JudgeConfig()
    out_dir = Path(out_dir)
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ConfigError(
            f"epochs and batch_size must be >= 1 and lr > 0, got {epochs}, {batch_size}, {lr}"
        )
    _check_out_dir(out_dir, overwrite)
    dataset = SequenceDataset(data_dir)
    sprites_labels(dataset, config)
    if dataset.length != config.length:
        raise DataError(
            f"{dataset.path} has sequences of T={dataset.length}, the judge config says "
            f"length={config.length}; set JudgeConfig(length={dataset.length})"
        )
    train_idx, val_idx = split_indices(len(dataset), val_fraction, seed)
    quiet_lightning()
    pl.seed_everything(seed, workers=True, verbose=False)
    module = JudgeModule(config, lr)
    loader = DataLoader(
        LabelledSequences(dataset, config, train_idx),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    val_loader = DataLoader(LabelledSequences(dataset, config, val_idx), batch_size=128)
    trainer = pl.Trainer(
        accelerator=accelerator,
        devices=1,
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=progress_bar,
        callbacks=[ProgressBar()] if progress_bar else [],
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    start = time.perf_counter()
    trainer.fit(module, loader, val_loader if len(val_idx) else None)
    wall = time.perf_counter() - start
    if trainer.interrupted:
        raise DsvaeError("training the judge was interrupted; nothing was saved")
    judge = module.judge.cpu().eval()
    last = module.history[-1] if module.history else {}
    val_accuracy = {k.removeprefix("val/"): v for k, v in last.items() if k.startswith("val/")}
    info = {
        "data": str(Path(data_dir).resolve()),
        "train_sequences": len(train_idx),
        "val_sequences": len(val_idx),
        "epochs": trainer.current_epoch,
        "batch_size": batch_size,
        "lr": lr,
        "lr_schedule": "cosine to 0",
        "seed": seed,
        "wall_time_s": round(wall, 1),
        "val_accuracy": val_accuracy,
        "history": module.history,
    }
    save_judge(judge, out_dir, info)
    return JudgeResult(out_dir, judge, val_accuracy, trainer.current_epoch, wall, module.history)


def train_sprites_judge(
    data_dir: str | Path, out_dir: str | Path, **kwargs: Any
) -> tuple[JudgeResult, dict[str, float] | None]:
    """Train the judge on a Sprites folder (``DIR/train``, or ``DIR`` itself) and save it.

    When ``DIR/test`` exists the judge's accuracy on it is returned and saved as
    ``OUT/test_accuracy.json``; otherwise None. ``kwargs`` go to :func:`train_judge`.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    train_dir = data_dir / "train" if (data_dir / "train").is_dir() else data_dir
    result = train_judge(train_dir, out_dir, **kwargs)
    test_dir = data_dir / "test"
    if not test_dir.is_dir():
        return result, None
    accuracy = judge_accuracy(result.judge, test_dir)
    atomic_write_json(out_dir / TEST_ACCURACY_FILE, accuracy)
    return result, accuracy
