"""Where the time of a training run goes: start-up, steps, validation, checkpoints.

``dsvae train`` is only as fast as the time its loop spends outside the training step
lets it be. :class:`StageClock` counts that time by stage and :class:`TimedCheckpointIO`
counts how long the training thread waits on each checkpoint save (with
``train.async_checkpoints`` the save itself runs in a thread, so the wait is the copy of
the state only). The numbers go to ``summary.json`` as ``time_s``, next to the run's
end-to-end rate, so that a run can be compared with ``benchmarks/bench.py``'s step.

Times are host wall-clock times read at the hooks, without synchronising the device:
on a GPU the steps run ahead of the host, and what looks like step time may be paid at
the next synchronising call (a validation pass, a checkpoint's copy). The totals and
the end-to-end rate are exact; the split between stages is indicative there.
"""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO


class TimedCheckpointIO(CheckpointIO):
    """Delegates to ``inner`` and adds up the seconds the caller waits on each save."""

    def __init__(self, inner: CheckpointIO) -> None:
        self.inner = inner
        self.save_seconds = 0.0
        self.saves = 0

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        start = time.perf_counter()
        self.inner.save_checkpoint(checkpoint, path, storage_options)
        self.save_seconds += time.perf_counter() - start
        self.saves += 1

    def load_checkpoint(self, path: Any, map_location: Any = None, **kwargs: Any) -> dict:
        if map_location is None:
            return self.inner.load_checkpoint(path, **kwargs)
        return self.inner.load_checkpoint(path, map_location=map_location, **kwargs)

    def remove_checkpoint(self, path: Any) -> None:
        self.inner.remove_checkpoint(path)

    def teardown(self) -> None:
        """Wait for saves still running in a thread (async checkpoints); count the wait."""
        start = time.perf_counter()
        self.inner.teardown()
        self.save_seconds += time.perf_counter() - start


class StageClock(pl.Callback):
    """Seconds of one ``dsvae train`` process by stage.

    ``start`` is when the process began its work (before the data was opened), so
    ``startup`` counts opening the data, building the model and Lightning's own start up
    to the first training batch. ``steps`` is the time between the start and the end of
    each training batch (the step and its logging), ``validation`` the validation passes,
    ``checkpoints`` the waits on checkpoint saves; ``other`` is the rest of the loop
    (data loading between batches, pictures, probes, epoch ends). ``first_step`` (part
    of ``steps``) is the first training batch alone: it pays the warm-up that is paid
    once, ``torch.compile``'s compilation and cuDNN's autotuning.
    """

    def __init__(self, start: float | None = None) -> None:
        self.start = time.perf_counter() if start is None else start
        self.first_batch: float | None = None
        self.end: float | None = None
        self.steps = 0.0
        self.first_step: float | None = None
        self.sequences = 0  # trained on by all processes together
        self.validation = 0.0
        self._batch_start = 0.0
        self._val_start = 0.0
        self.checkpoint_io: TimedCheckpointIO | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._batch_start = time.perf_counter()
        if self.first_batch is None:
            self.first_batch = self._batch_start

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        seconds = time.perf_counter() - self._batch_start
        self.steps += seconds
        if self.first_step is None:  # pays torch.compile and cuDNN's autotuning
            self.first_step = seconds
        self.sequences += len(batch) * trainer.world_size  # frames, or their indices

    def rate(self) -> float:
        """Training sequences per second from the start of the process to the end of fit."""
        return self.sequences / max(self.report()["total"], 1e-9)

    def on_validation_start(self, trainer, pl_module) -> None:
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        self.validation += time.perf_counter() - self._val_start

    def on_fit_end(self, trainer, pl_module) -> None:
        self.end = time.perf_counter()

    def report(self, end: float | None = None) -> dict[str, float]:
        """The stages in seconds (rounded to ms); ``total`` is start to the end of fit."""
        end = self.end if end is None else end
        end = time.perf_counter() if end is None else end
        first = end if self.first_batch is None else self.first_batch
        checkpoints = self.checkpoint_io.save_seconds if self.checkpoint_io else 0.0
        stages = {
            "startup": first - self.start,
            "steps": self.steps,
            "validation": self.validation,
            "checkpoints": checkpoints,
        }
        stages["other"] = max(0.0, end - self.start - sum(stages.values()))
        stages["total"] = end - self.start
        stages["first_step"] = self.first_step or 0.0  # part of steps
        return {k: round(v, 3) for k, v in stages.items()}
