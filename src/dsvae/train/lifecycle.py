"""A run folder's life outside the training loop: one trainer at a time, starts that failed,
and interrupts that save a checkpoint.

* :class:`RunLock`: ``RUN/.dsvae-train.lock`` held with ``fcntl.flock`` while a process
  trains the run, so that a second ``dsvae train`` on the same folder refuses at once. The
  kernel drops the lock when the process dies, however it dies: it never goes stale.
* :func:`failed_start`: a folder that holds a config but no checkpoint can be started again
  in place, by the same command without ``--resume``.
* :class:`SignalCheckpoint`: SIGINT (Ctrl-C) or SIGTERM finishes the current step, writes a
  resumable checkpoint and stops with :class:`~dsvae.errors.TrainingInterrupted`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning.pytorch as pl

from dsvae.atomic import make_dirs, remove_dirs
from dsvae.errors import DsvaeError, TrainingInterrupted, write_error

LOCK_FILE = ".dsvae-train.lock"
CHECKPOINTS = "checkpoints"
# what a start that never reached a checkpoint can leave in its run folder
_FAILED_START = {"config.yaml", "metrics.csv", CHECKPOINTS, "pictures", "disentanglement.png"}


class RunLock:
    """An exclusive lock on a run folder (created if missing) for as long as it is held."""

    def __init__(self, run_dir: Path, fd: int, created: list[Path], new_file: bool) -> None:
        self.run_dir, self.path = run_dir, run_dir / LOCK_FILE
        self._fd: int | None = fd
        self._created, self._new_file = created, new_file

    @classmethod
    def acquire(cls, run_dir: str | Path) -> RunLock:
        """Lock ``run_dir``; raise DsvaeError naming the process that holds it already."""
        run_dir = Path(run_dir)
        path = run_dir / LOCK_FILE
        created: list[Path] = []
        try:
            created = make_dirs(run_dir)
            new_file = not path.exists()
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:
            remove_dirs(created)
            raise write_error(err, path) from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = _read_pid(fd)
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise write_error(err, path) from err
            who = f"process {holder}" if holder else "another process"
            raise DsvaeError(
                f"{run_dir} is being trained by {who} (lock {path}); wait for it or choose "
                "another --out"
            ) from err
        lock = cls(run_dir, fd, created, new_file)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as err:
            lock.release(undo=True)
            raise write_error(err, path) from err
        return lock

    def release(self, undo: bool = False) -> None:
        """Let go of the lock; with ``undo`` also remove the lock file and the folders that
        :meth:`acquire` created (a start refused before it wrote anything)."""
        if self._fd is None:
            return
        if undo:
            if self._new_file:
                with contextlib.suppress(OSError):
                    self.path.unlink()
            remove_dirs(self._created)
        os.close(self._fd)
        self._fd = None


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode().strip())
    return None


def has_checkpoint(run_dir: Path) -> bool:
    """True if ``RUN/checkpoints`` holds a checkpoint file (``*.ckpt``)."""
    folder = run_dir / CHECKPOINTS
    return folder.is_dir() and any(p.is_file() for p in folder.glob("*.ckpt"))


def failed_start(run_dir: Path) -> bool:
    """True if ``run_dir`` holds only what a start that never reached its first checkpoint
    leaves: ``config.yaml``, ``metrics.csv``, pictures, an empty ``checkpoints/`` (temporary
    files aside) and the lock. Nothing in it can be resumed, so it may be started again."""
    if not (run_dir / "config.yaml").is_file() or has_checkpoint(run_dir):
        return False
    for entry in run_dir.iterdir():
        if entry.name == LOCK_FILE or _temporary(entry):
            continue
        if entry.name not in _FAILED_START:
            return False
        if entry.name == CHECKPOINTS and not all(_temporary(p) for p in entry.iterdir()):
            return False
    return True


def clear_failed_start(run_dir: Path) -> None:
    """Remove what a failed start left that a new start would append to or trip on."""
    for path in (run_dir / "metrics.csv", *run_dir.glob(".*.tmp")):
        path.unlink(missing_ok=True)
    if (run_dir / CHECKPOINTS).is_dir():
        for path in (run_dir / CHECKPOINTS).glob(".*.tmp"):
            path.unlink(missing_ok=True)


def _temporary(path: Path) -> bool:
    """A file an atomic write left behind when it was killed (``.NAME.XXXX.tmp``)."""
    return path.name.startswith(".") and path.name.endswith(".tmp") and path.is_file()


class SignalCheckpoint(pl.Callback):
    """On SIGINT or SIGTERM, finish the current training step, save a checkpoint there and
    stop with :class:`~dsvae.errors.TrainingInterrupted`.

    The checkpoint is written by ``trainer.save_checkpoint`` (atomically, through the run's
    checkpoint IO) at the end of the step, so ``--resume`` continues at the next step,
    mid-epoch if need be. A signal before training has started, or a second one, stops at
    once (the older checkpoints stay). The handlers are installed by :meth:`listen` (main
    thread only; a signal the process was told to ignore stays ignored) and again when
    training starts, over Lightning's own SIGTERM handler. Under DDP Lightning's handling
    is left alone.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.signum: int | None = None
        self._trainer: pl.Trainer | None = None
        self._training = False
        self._previous: dict[int, Any] = {}

    def listen(self) -> None:
        """Install the handlers (a no-op outside the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous.setdefault(signum, signal.getsignal(signum))
            if self._previous[signum] != signal.SIG_IGN:
                signal.signal(signum, self._handle)

    def restore(self) -> None:
        """Put back the handlers that were there before :meth:`listen`."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self._training or self.signum is not None:
            step = self._trainer.global_step if self._trainer is not None else 0
            resumable = has_checkpoint(self.path.parent.parent)
            raise TrainingInterrupted(signum, step, None, resumable)
        self.signum = signum
        name = signal.Signals(signum).name
        print(
            f"{name}: stopping after this step to save a checkpoint (again: stop at once)",
            file=sys.stderr,
            flush=True,
        )

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = trainer
        if trainer.world_size > 1:  # every process would need to stop at the same step
            self.restore()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size == 1:
            self.listen()
            self._training = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._training = False

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        if self.signum is None:
            return
        trainer.save_checkpoint(self.path)
        raise TrainingInterrupted(self.signum, trainer.global_step, self.path, resumable=True)


def check_resumable(run_dir: Path) -> None:
    """Raise DsvaeError unless ``run_dir`` holds a checkpoint to resume from."""
    if has_checkpoint(run_dir):
        return
    if failed_start(run_dir):
        raise DsvaeError(
            f"cannot resume: {run_dir} has no checkpoint yet; rerun the same command without "
            "--resume to start it again in place"
        )
    raise DsvaeError(
        f"cannot resume: {run_dir} has no checkpoints/last.ckpt; start a new run without --resume"
    )
