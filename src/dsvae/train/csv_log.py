"""A CSV logger for run folders: fixed columns, appends across --resume."""

from __future__ import annotations

import csv
from argparse import Namespace
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only

from dsvae.atomic import atomic_path


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
        text = self.path.read_text(encoding="utf-8", errors="replace")
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines = lines[:-1]
        header = next(csv.reader(lines[:1]), [])
        self.columns += [c for c in header if c not in self.columns]
        rows = [
            r
            for r in csv.DictReader(lines)
            if (r.get("step") or "").isdigit() and int(r["step"]) <= step
        ]
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
            old = _header(path)
            with open(path, newline="", encoding="utf-8") as fh:
                kept = list(csv.DictReader(fh))
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
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        for row in csv.DictReader(fh):
            for key, value in row.items():
                if key not in (None, "step", "epoch") and value:
                    try:
                        last[key] = float(value)
                    except ValueError:
                        continue
    return last


def _header(path: Path) -> list[str] | None:
    with open(path, newline="", encoding="utf-8") as fh:
        return next(csv.reader(fh), None)


def _scalar(value: Any) -> float:
    return float(value.item()) if hasattr(value, "item") else float(value)
