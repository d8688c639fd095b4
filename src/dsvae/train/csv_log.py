"""A CSV logger for run folders: fixed columns, appends across --resume.

``metrics.csv`` is read back on a resume (to drop the rows after the checkpoint) and at
the end (the last value of each column). It is read whole by :func:`read_rows`, which
refuses, in one line, a file that is not a regular file, that is larger than
:data:`MAX_METRICS_BYTES`, that holds binary data (NUL bytes) or that the csv module
cannot parse (a field of over 128 KiB).
"""

from __future__ import annotations

import csv
import os
from argparse import Namespace
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only

from dsvae.atomic import atomic_path
from dsvae.text_files import Refusal, read_bytes

MAX_METRICS_BYTES = 1 << 30
"""The largest metrics.csv read back (a row is about 200 bytes: 5 million logged steps)."""
_MOVE_AWAY = "move it out of the run folder and resume again (a new log is started)"


class RunCSVLogger(Logger):
    """Writes ``metrics.csv`` in the run folder with columns step, epoch and ``metrics``.

    Unlike Lightning's CSVLogger it never deletes an existing file: a resumed run
    drops the rows logged after its checkpoint's step and appends new ones.
    """

    def __init__(self, run_dir: str | Path, metrics: tuple[str, ...]) -> None:
        super().__init__()
        self.path = Path(run_dir) / "metrics.csv"
        self.columns = ["step", "epoch", *metrics]
        self._rows: list[dict[str, Any]] = []

    @property
    def name(self) -> str:
        return "dsvae"

    @property
    def version(self) -> str:
        return "0"

    @property
    def save_dir(self) -> str:
        return str(self.path.parent)

    @rank_zero_only
    def log_hyperparams(
        self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any
    ) -> None:
        """The resolved config is already in the run folder's config.yaml."""

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        row = {k: _scalar(v) for k, v in metrics.items() if k in self.columns}
        row["step"] = step
        if "epoch" in metrics:
            row["epoch"] = int(metrics["epoch"])
        self._rows.append(row)
        if len(self._rows) >= 20:
            self.save()

    @rank_zero_only
    def truncate_after(self, step: int) -> None:
        """Drop rows logged after ``step`` (by a run that was killed after its last checkpoint).

        A last line without its newline (a kill mid-append) is dropped too; the file is
        rewritten atomically, so a kill now cannot lose the rows before ``step``.
        """
        if not self.path.is_file():
            return
        header, rows = read_rows(self.path, complete_lines=True)
        self.columns += [c for c in header if c not in self.columns]
        rows = [r for r in rows if _step(r) is not None and _step(r) <= step]
        with atomic_path(self.path) as tmp:
            self._write(rows, mode="w", path=tmp)

    @rank_zero_only
    def save(self) -> None:
        if self._rows:
            self._write(self._rows, mode="a")
            self._rows = []

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.save()

    def _write(self, rows: list[dict[str, Any]], mode: str, path: Path | None = None) -> None:
        path = path or self.path
        if mode == "a" and path.is_file() and _header(path) not in (None, self.columns):
            # a resume with other columns (e.g. the probe turned on): rewrite under a header
            # that holds the old and the new columns, so that no value lands in another's
            old, kept = read_rows(path)
            self.columns += [c for c in old if c not in self.columns]
            with atomic_path(path) as tmp:
                self._write(kept + rows, mode="w", path=tmp)
            return
        new = mode == "w" or not path.is_file()
        with open(path, mode, newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerows(rows)


def last_logged(path: str | Path) -> dict[str, float]:
    """The last value logged under each column of a run's metrics.csv ({} without the file).

    After a resume, the trainer knows only what this process logged; the file holds the
    whole run (e.g. the last validation ELBO, logged before the resume).
    """
    path = Path(path)
    if not path.is_file():
        return {}
    last: dict[str, float] = {}
    for row in read_rows(path)[1]:
        for key, value in row.items():
            if key not in (None, "step", "epoch") and isinstance(value, str) and value:
                try:
                    last[key] = float(value)
                except ValueError:
                    continue
    return last


def read_rows(path: Path, complete_lines: bool = False) -> tuple[list[str], list[dict]]:
    """The header and the rows of a metrics.csv (undecodable bytes replaced); with
    ``complete_lines``, a last line without its newline (cut off by a kill) is dropped.
    Raises DsvaeError, naming the file, for one that cannot be read as CSV."""
    refuse = Refusal(hint=_MOVE_AWAY)
    data = read_bytes(path, limit=MAX_METRICS_BYTES, refuse=refuse)
    nul = data.find(b"\0")
    if nul >= 0:
        raise refuse(path, f"holds binary data (a NUL byte at offset {nul})")
    lines = data.decode("utf-8", errors="replace").splitlines(keepends=True)
    if complete_lines and lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]
    try:
        header = next(csv.reader(lines[:1]), [])
        rows = list(csv.DictReader(lines))
    except csv.Error as err:
        raise refuse(path, f"cannot be read as CSV ({err})") from err
    return header, rows


def check_metrics_file(path: Path) -> None:
    """Raise DsvaeError unless ``path`` is missing or a metrics.csv that a resume can read
    back and append to (checked before a resume writes anything)."""
    if os.path.lexists(path):
        read_rows(path)


def _step(row: dict) -> int | None:
    """A row's step, if it is a count (18 digits at most: a step, not a hostile number)."""
    text = row.get("step")
    return int(text) if isinstance(text, str) and text.isdigit() and len(text) <= 18 else None


def _header(path: Path) -> list[str] | None:
    """The header of the log being appended to (only its first line is read: this runs at
    every save)."""
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        first = fh.readline(1 << 20)
    try:
        return next(csv.reader([first]), None)
    except csv.Error:
        return None


def _scalar(value: Any) -> float:
    return float(value.item()) if hasattr(value, "item") else float(value)
