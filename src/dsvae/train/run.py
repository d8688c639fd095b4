"""Training runs: a run folder, Lightning's Trainer, checkpoints that resume exactly.

A run folder holds::

    config.yaml          the resolved config (frame_shape filled in from the data)
    metrics.csv          one row per logged step or epoch (appended on --resume)
    checkpoints/         Lightning checkpoints (atomic writes; last.ckpt for --resume)
    model/               the final model: config.json + model.safetensors
    summary.json         final metrics, steps, the peak learning rate, this call's wall time and
                         the whole run's training time
    pictures/            reconstructions and samples while training (train.pictures_every_n_epochs)
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint, Timer, TQDMProgressBar
from lightning.pytorch.plugins.io import AsyncCheckpointIO, CheckpointIO
from lightning.pytorch.utilities import rank_zero_only

from dsvae.atomic import atomic_write_json, atomic_write_text
from dsvae.config import ExperimentConfig, TrainConfig
from dsvae.config_files import from_dict, to_dict
from dsvae.data import SequenceDataset
from dsvae.errors import ConfigError, DataError, DsvaeError, TrainingInterrupted, write_error
from dsvae.model import DSVAE, save_model
from dsvae.model.objective import Objective
from dsvae.text_files import Refusal, read_json, read_yaml
from dsvae.train.callbacks import DisentanglementProbe, NonFiniteLossGuard, PicturesCallback
from dsvae.train.checkpoints import AtomicCheckpointIO, checkpoint_weights, inspect_checkpoint
from dsvae.train.csv_log import RunCSVLogger, check_metrics_file, last_logged
from dsvae.train.lifecycle import (
    LOCK_FILE,
    RunLock,
    SignalCheckpoint,
    check_resumable,
    clear_failed_start,
    failed_start,
)
from dsvae.train.module import (
    DSVAEModule,
    NonFiniteLossError,
    SequenceDataModule,
    metric_names,
)
from dsvae.train.options import checked_trainer
from dsvae.train.timing import StageClock, TimedCheckpointIO

CONFIG_FILE = "config.yaml"
LAST_CHECKPOINT = "last.ckpt"
MAX_SEQUENCE_LENGTH = 100_000
"""The longest T a run's summary.json may give ``dsvae generate`` (frames, not hours)."""


class ProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar without the logger's version number."""

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


@dataclass
class TrainResult:
    """What a finished run left behind."""

    run_dir: Path
    model_dir: Path
    model: DSVAE
    metrics: dict[str, float]
    global_step: int
    wall_time_s: float


def prepare_run_dir(run_dir: Path, config: ExperimentConfig, resume: bool) -> ExperimentConfig:
    """Create (or check, on resume) the run folder; return the config the run uses.

    On resume the model section must equal the saved one; the train section may
    change (e.g. a larger ``max_epochs`` to train for longer). A folder left by a start
    that never reached a checkpoint (:func:`~dsvae.train.lifecycle.failed_start`) is
    started again in place.
    """
    saved = run_dir / CONFIG_FILE
    if resume:
        check_resumable(run_dir)
        old = read_run_config(run_dir)
        for stale in (run_dir / "checkpoints").glob(".*.tmp"):  # left by a kill mid-write
            stale.unlink(missing_ok=True)
        if to_dict(old.model) != to_dict(config.model):
            raise ConfigError(
                f"the model config differs from the one saved in {saved}; resume with the same "
                "model settings or start a new run in another folder"
            )
    elif failed_start(run_dir):
        clear_failed_start(run_dir)
    elif run_dir.exists() and any(p.name != LOCK_FILE for p in run_dir.iterdir()):
        raise DsvaeError(
            f"run folder {run_dir} already exists and is not empty; pass --resume to continue it "
            "or choose another --out"
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(err, run_dir) from err
    atomic_write_text(saved, yaml.safe_dump(to_dict(config), sort_keys=False))
    return config


def read_run_config(run_dir: Path) -> ExperimentConfig:
    """The config a run folder was trained with (``config.yaml``, read by :func:`dsvae.text_files.read_yaml`)."""
    path = run_dir / CONFIG_FILE
    data = read_yaml(path, refuse=Refusal(ConfigError, hint="the run folder is damaged"))
    try:
        return from_dict(ExperimentConfig, data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}; the run folder is damaged") from err


def resolve_frame_shape(config: ExperimentConfig, frame_shape: tuple[int, ...]) -> ExperimentConfig:
    """``config`` with ``model.frame_shape`` filled in from the data (a new config), or
    checked against it."""
    model = config.model
    if model.frame_shape is not None and tuple(model.frame_shape) != tuple(frame_shape):
        raise ConfigError(
            f"model.frame_shape is {list(model.frame_shape)} but the data set's frames are "
            f"{list(frame_shape)}; remove model.frame_shape from the config to take it from the data"
        )
    model.validate_frame_shape(list(frame_shape))
    model = dataclasses.replace(model, frame_shape=list(frame_shape))
    return dataclasses.replace(config, model=model)


def resolve_precision(precision: str, accelerator: str) -> str:
    """``auto``: bf16 mixed precision on a GPU that has it, float32 elsewhere."""
    if precision != "auto":
        return precision
    gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "bf16-mixed" if gpu and torch.cuda.is_bf16_supported() else "32-true"


def build_trainer(
    config: ExperimentConfig, run_dir: Path, extra_callbacks: list | None = None
) -> pl.Trainer:
    cfg = config.train
    checkpoints = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="epoch{epoch:04d}",
        auto_insert_metric_name=False,
        every_n_epochs=cfg.checkpoint_every_n_epochs,
        save_last=True,
        # overwrite last.ckpt even in a run folder copied from another run (Lightning
        # would write last-v1.ckpt beside it, and --resume and export read last.ckpt)
        enable_version_counter=False,
        save_top_k=2,
        monitor="step",
        mode="max",
        # at the end of every training epoch, whether validation ran in it or not
        save_on_train_epoch_end=True,
    )
    guard = NonFiniteLossGuard(cfg.log_every_n_steps)
    # the training time of the whole run: the timer's state is saved in every checkpoint,
    # so it counts across a resume (and enforces train.max_time_minutes the same way)
    max_time = {"minutes": cfg.max_time_minutes} if cfg.max_time_minutes else None
    timer = Timer(duration=max_time, interval="step", verbose=False)
    clock = next((c for c in extra_callbacks or [] if isinstance(c, StageClock)), None)
    callbacks = [guard, checkpoints, timer, *(extra_callbacks or [])]
    if cfg.pictures_every_n_epochs:
        callbacks.append(
            PicturesCallback(run_dir / "pictures", cfg.pictures_every_n_epochs, seed=cfg.seed)
        )
    if cfg.progress_bar:
        callbacks.append(ProgressBar(refresh_rate=max(1, cfg.log_every_n_steps // 2)))
    columns = metric_names(cfg)
    if any(isinstance(c, DisentanglementProbe) for c in callbacks):
        from dsvae.eval.sprites import probe_metric_names

        columns += probe_metric_names()
    return checked_trainer(
        cfg,
        lambda: pl.Trainer(
            default_root_dir=run_dir,
            accelerator=cfg.accelerator,
            devices=cfg.devices,
            num_nodes=cfg.num_nodes,
            strategy=cfg.strategy,
            precision=resolve_precision(cfg.precision, cfg.accelerator),
            max_epochs=cfg.max_epochs,
            max_steps=cfg.max_steps,
            gradient_clip_val=cfg.grad_clip,
            check_val_every_n_epoch=cfg.val_every_n_epochs,
            # no validation split: no validation loop (and no warning about an empty one)
            limit_val_batches=0 if cfg.val_fraction == 0 else cfg.val_max_batches,
            log_every_n_steps=cfg.log_every_n_steps,
            logger=RunCSVLogger(run_dir, columns),
            callbacks=callbacks,
            plugins=[checkpoint_io(cfg, clock)],
            enable_progress_bar=cfg.progress_bar,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            deterministic=False,
        ),
    )


def checkpoint_io(cfg: TrainConfig, clock: StageClock | None = None) -> CheckpointIO:
    """Atomic checkpoint writes, in a thread with ``train.async_checkpoints`` (``None``:
    with CUDA), timed for ``clock`` when there is one."""
    io: CheckpointIO = AtomicCheckpointIO()
    use_async = cfg.async_checkpoints
    if use_async is None:
        use_async = cfg.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    if use_async:
        # Lightning's plugin copies the tensors before it hands them to its thread
        io = AsyncCheckpointIO(io)
    if clock is None:
        return io
    clock.checkpoint_io = TimedCheckpointIO(io)
    return clock.checkpoint_io


def train(
    config: ExperimentConfig,
    data_dir: str | Path,
    run_dir: str | Path,
    *,
    resume: bool = False,
    callbacks: list | None = None,
) -> TrainResult:
    """Train a DSVAE on the data set in ``data_dir``, writing the run to ``run_dir``.

    With ``resume=True`` the run continues from its newest complete checkpoint
    (``run_dir/checkpoints/last.ckpt``, see :func:`resume_checkpoint`)
    (optimiser, step counter and random state included).

    Under DDP (``train.strategy: ddp``, or a launch by torchrun/SLURM) every process
    calls this; only global rank 0 writes the run folder, the final model and the
    summary. ``train.batch_size`` is per process.
    """
    clock = StageClock()
    zero = rank_zero_only.rank == 0  # known from the launcher's environment
    run_dir = Path(run_dir)
    quiet_lightning()
    if config.train.threads is not None:
        torch.set_num_threads(config.train.threads)
    data = SequenceDataModule(str(data_dir), config.train)
    check_finite_frames(data.dataset)
    config = resolve_frame_shape(config, data.dataset.frame_shape)
    # the objective's checks against the model and the data, before anything is written
    objective = Objective.build(config, data.dataset.frame_shape, data.dataset.meta)
    stopper = SignalCheckpoint(run_dir / "checkpoints" / LAST_CHECKPOINT)
    # Lightning's own options too (accelerator, devices, ...): building the Trainer writes nothing
    trainer = build_trainer(config, run_dir, [*(callbacks or []), stopper, clock])
    ckpt = None
    if resume:  # what a resume reads back is checked before anything is written
        ckpt = resume_checkpoint(run_dir)
        check_metrics_file(run_dir / "metrics.csv")
    lock = RunLock.acquire(run_dir) if zero else None  # a second trainer refuses here
    try:
        if zero:
            try:
                config = prepare_run_dir(run_dir, config, resume)
            except BaseException:
                lock.release(undo=True)  # refused: leave the folder as it was
                raise
        pl.seed_everything(config.train.seed, workers=True, verbose=False)
        module = DSVAEModule(config, objective)
        start = time.perf_counter()
        _fit(trainer, module, data, ckpt, stopper)
        wall = time.perf_counter() - start
        if trainer.interrupted:
            raise DsvaeError("training was interrupted; continue it with --resume")
        return _finish(trainer, module, data, run_dir, wall, resume, data_dir, clock)
    finally:
        if lock is not None:
            lock.release()


def _fit(
    trainer: pl.Trainer,
    module: DSVAEModule,
    data: SequenceDataModule,
    ckpt: Path | None,
    stopper: SignalCheckpoint,
) -> None:
    """``trainer.fit``, with SIGINT and SIGTERM turned into a checkpoint and a clean stop."""
    stopper.listen()
    try:
        trainer.fit(module, datamodule=data, ckpt_path=ckpt, weights_only=True)
    except TrainingInterrupted:
        raise
    except Exception as err:
        _explain_non_finite(err, trainer)
        raise
    finally:
        stopper.restore()


def _finish(
    trainer: pl.Trainer,
    module: DSVAEModule,
    data: SequenceDataModule,
    run_dir: Path,
    wall: float,
    resume: bool,
    data_dir: str | Path,
    clock: StageClock,
) -> TrainResult:
    """Save the final model and summary.json (rank 0); return what the run left behind."""
    # what this process logged, over the last values of the whole run (after a resume)
    metrics = last_logged(run_dir / "metrics.csv") if trainer.is_global_zero else {}
    metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1})
    timer = next(c for c in trainer.callbacks if isinstance(c, Timer))
    model = module.model.cpu().eval()
    model_dir = run_dir / "model"
    if not trainer.is_global_zero:
        return TrainResult(run_dir, model_dir, model, metrics, trainer.global_step, wall)
    save_model(model, model_dir)
    summary = {
        "global_step": trainer.global_step,
        "epochs": trainer.current_epoch,
        "wall_time_s": round(wall, 2),
        "train_time_s": round(timer.time_elapsed("train"), 2),
        # this process: where its time went, and its sequences per second from start to end
        "time_s": clock.report(),
        "sequences_per_s": round(clock.rate(), 2),
        "steps_per_epoch": int(trainer.num_training_batches),
        # train.lr as scaled to the global batch (train.lr_reference_batch), before the schedule
        "peak_lr": _peak_lr(trainer),
        "metrics": metrics,
        "resumed": resume,
        "sequence_length": data.dataset.length,
        "data": str(data_dir),
    }
    atomic_write_json(run_dir / "summary.json", summary)
    return TrainResult(run_dir, model_dir, model, metrics, trainer.global_step, wall)


def _peak_lr(trainer: pl.Trainer) -> float:
    """The rate the optimiser's schedule scales (restored from the checkpoint on a resume)."""
    group = trainer.optimizers[0].param_groups[0]
    return float(group.get("initial_lr", group["lr"]))


def resume_checkpoint(run_dir: Path) -> Path:
    """The newest complete checkpoint of a run: ``last.ckpt``, or an ``epochNNNN.ckpt``
    written after it (a kill can come between the two writes of one save, even before the
    first ``last.ckpt``), or a ``last-vN.ckpt`` that older versions wrote when a run folder
    had been copied.

    A ``last.ckpt`` that cannot be resumed from (unreadable, without the keys Lightning
    needs, with NaN weights: :func:`~dsvae.train.checkpoints.inspect_checkpoint`) is
    refused, naming the newest complete checkpoint beside it, if there is one.
    """
    check_resumable(run_dir)
    folder = run_dir / "checkpoints"
    last = folder / LAST_CHECKPOINT
    steps: dict[Path, int] = {}  # the checkpoints a resume can start from
    problems: dict[Path, str] = {}
    for path in [last, *sorted([*folder.glob("epoch*.ckpt"), *folder.glob("last-v*.ckpt")])]:
        if not os.path.lexists(path):
            continue
        step, problem = inspect_checkpoint(path)
        if problem is None:
            steps[path] = step
        else:
            problems[path] = problem
    if last in problems:
        raise DsvaeError(f"checkpoint {last} {problems[last]}{_instead(steps)}")
    if not steps:
        path, problem = next(iter(problems.items()))
        raise DsvaeError(f"no checkpoint of {run_dir} can be resumed from: {path} {problem}")
    return max(steps, key=lambda p: (steps[p], p == last))  # last.ckpt among equals


def _instead(steps: dict[Path, int]) -> str:
    """Where else a resume could start: the newest of ``steps``, as a hint."""
    if not steps:
        return ""
    path = max(steps, key=steps.get)
    return (
        f"; {path.name} beside it (step {steps[path]}) is complete: copy it over "
        f"{LAST_CHECKPOINT} to resume from there"
    )


def _explain_non_finite(err: Exception, trainer: pl.Trainer) -> None:
    """Raise NonFiniteLossError if ``err`` followed a NaN loss or NaN parameters."""
    for callback in trainer.callbacks:
        if isinstance(callback, NonFiniteLossGuard):
            callback.check()  # a NaN loss at an earlier step explains what followed
    if isinstance(err, ValueError) and "invalid values" in str(err):  # torch.distributions
        raise NonFiniteLossError(
            f"the model produced NaN or infinite values at step {trainer.global_step}; training "
            "stopped and checkpoints/ keeps the last good checkpoint. Lower train.lr or set "
            "train.grad_clip, then resume with --resume"
        ) from err


def check_finite_frames(dataset: SequenceDataset, chunk: int = 256) -> None:
    """Raise DataError if float frames hold NaN or infinite values (uint8 images cannot)."""
    frames = dataset.frames  # (N, T, D) memory-mapped: read a chunk at a time
    if frames.dtype.kind != "f":
        return
    for start in range(0, frames.shape[0], chunk):
        finite = np.isfinite(np.asarray(frames[start : start + chunk]))
        if not finite.all():
            bad = start + int(np.flatnonzero(~finite.reshape(finite.shape[0], -1).all(1))[0])
            raise DataError(
                f"{dataset.path}/frames.npy: sequence {bad} holds NaN or infinite values; "
                "fix the features (e.g. log of zero) and rebuild the data set"
            )


def quiet_lightning() -> None:
    """Keep Lightning's start-up chatter (GPU/TPU availability lines, tips) off the terminal."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    # resuming writes into the run's own checkpoint folder, which is meant to exist
    warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
    # resuming a copy of a run folder (to continue it with other settings) is allowed
    warnings.filterwarnings("ignore", message="The dirpath has changed from")
    torch.set_float32_matmul_precision("high")


def export_checkpoint(run_dir: str | Path, checkpoint: str = LAST_CHECKPOINT) -> Path:
    """Write ``run_dir/model/`` from a checkpoint of an unfinished (or stopped) run.

    The checkpoint is read with ``weights_only=True``; the model config comes from
    the run's ``config.yaml``. Returns the model folder.
    """
    from dsvae.model import build_model
    from dsvae.model.saved import load_checked_state

    run_dir = Path(run_dir)
    path = run_dir / "checkpoints" / checkpoint
    if not (run_dir / CONFIG_FILE).is_file() or not path.is_file():
        raise DsvaeError(f"{run_dir} is not a run folder with checkpoints/{checkpoint}")
    config = read_run_config(run_dir)
    weights = checkpoint_weights(AtomicCheckpointIO().load_checkpoint(path), path)
    try:
        model = build_model(config.model)
    except ConfigError as err:
        raise ConfigError(f"{run_dir / CONFIG_FILE}: {err}") from err
    state = {k.removeprefix("model."): v for k, v in weights.items()}
    load_checked_state(model, state, f"checkpoint {path}", str(run_dir / CONFIG_FILE))
    return save_model(model.eval(), run_dir / "model")


def training_length(run: str | Path) -> int | None:
    """T of the data a run folder was trained on, when its ``summary.json`` records it."""
    summary = Path(run) / "summary.json"
    if not summary.is_file():
        return None
    refuse = Refusal(hint="pass --length, or delete the file")
    data = read_json(summary, refuse=refuse)
    if not isinstance(data, dict):
        raise refuse(summary, f"holds {type(data).__name__}, not an object with the run's summary")
    length = data.get("sequence_length")
    if not isinstance(length, int) or isinstance(length, bool) or length < 1:
        return None
    if length > MAX_SEQUENCE_LENGTH:
        raise refuse(summary, f"says sequence_length {length}, more than {MAX_SEQUENCE_LENGTH:,}")
    return length
