"""Ablation grids: train a list of config variants for one budget and score each on validation.

A grid is a YAML file::

    config: sprites-cpu            # the shipped config (or a YAML path) every variant starts from
    set: [train.progress_bar=false]   # overrides for every variant (optional)
    budget: {minutes: 40}          # or {epochs: 5} or {steps: 1100}: train.max_time_minutes,
                                   # train.max_epochs or train.max_steps
    probe_every: 1                 # score on validation characters every N epochs (optional)
    variants:
      - name: baseline             # no overrides: the config as it is
      - name: scale-0.5
        set: [model.likelihood.scale_value=0.5]

:func:`run_grid` trains every variant with ``dsvae train`` in a subprocess (``lanes`` at a
time, ``threads`` CPU threads each), then scores it on the validation characters of its run
with ``dsvae evaluate sprites --split val`` (Table 1, the later-work protocol and the
inferred-factor diagnostic), and writes ``ablation.md`` and ``ablation.json`` into the grid
folder after every variant. It is resumable: run it again and finished variants are kept, an
interrupted training resumes from its last checkpoint, a start that never reached one starts
again. The test characters are never read.

Grid folder::

    grid.yaml                 the grid as given (a rerun must pass the same grid)
    runs/NAME/                each variant's run folder (metrics.csv with probe/ columns,
                              disentanglement.png, checkpoints/, model/)
    runs/NAME.log             its training output
    evals/NAME/               sprites_eval.json / .md on the validation characters
    ablation.md, ablation.json
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dsvae import text_files
from dsvae.ablate_table import write_table
from dsvae.atomic import atomic_write_text
from dsvae.config import ExperimentConfig, load_config
from dsvae.errors import ConfigError, DsvaeError

GRID_FILE = "grid.yaml"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_GRID_KEYS = {"config", "set", "budget", "probe_every", "variants"}
_MAX_GRID_BYTES = 1 << 20


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: tuple[str, ...]
    config: ExperimentConfig = field(compare=False, repr=False)


@dataclass(frozen=True)
class Grid:
    """A checked grid: the base config, the overrides every variant gets, the variants."""

    base: str
    common: tuple[str, ...]
    budget: dict[str, float]
    probe_every: int
    variants: tuple[Variant, ...]
    source: dict[str, Any]

    def budget_overrides(self) -> list[str]:
        if "minutes" in self.budget:
            return [f"train.max_time_minutes={self.budget['minutes']}"]
        if "steps" in self.budget:
            # a step budget is the fair one when other work shares the CPU
            return [
                f"train.max_steps={int(self.budget['steps'])}",
                "train.max_epochs=100000",
                "train.max_time_minutes=null",
            ]
        return [f"train.max_epochs={int(self.budget['epochs'])}", "train.max_time_minutes=null"]


def _overrides(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and "=" in v for v in value):
        raise ConfigError(f"{where} must be a list of KEY=VALUE strings, got {value!r}")
    return tuple(value)


def parse_grid(data: Any, where: str = "the grid") -> Grid:
    """Check a grid (the parsed YAML) and build every variant's config; nothing is written.

    Raises :class:`ConfigError` naming the problem: not a mapping, an unknown grid key, no
    variants, a variant without a valid unique name, an override that is not KEY=VALUE, a
    config key that does not exist or a value it refuses (the variant is named).
    """
    from dsvae.configs import config_path

    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping with 'config' and 'variants'")
    unknown = sorted(set(data) - _GRID_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; valid keys: {sorted(_GRID_KEYS)}")
    base = data.get("config")
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{where}: 'config' must name a shipped config or a YAML file")
    common = _overrides(data.get("set"), f"{where}: 'set'")
    budget = data.get("budget")
    if (
        not isinstance(budget, dict)
        or len(budget) != 1
        or next(iter(budget)) not in ("minutes", "epochs", "steps")
        or isinstance(next(iter(budget.values())), bool)
        or not isinstance(next(iter(budget.values())), int | float)
        or next(iter(budget.values())) <= 0
    ):
        raise ConfigError(
            f"{where}: 'budget' must be {{minutes: M}}, {{epochs: E}} or {{steps: S}} with a "
            "positive number, "
            f"got {budget!r}"
        )
    probe_every = data.get("probe_every", 1)
    if isinstance(probe_every, bool) or not isinstance(probe_every, int) or probe_every < 0:
        raise ConfigError(f"{where}: 'probe_every' must be an integer >= 0 (0: off)")
    variants = data.get("variants")
    if not isinstance(variants, list) or not variants:
        raise ConfigError(f"{where}: 'variants' must be a non-empty list of {{name, set}}")
    path = config_path(base)
    grid_budget = {k: float(v) for k, v in budget.items()}
    extra = Grid(base, common, grid_budget, probe_every, (), data).budget_overrides()
    built, seen = [], set()
    for i, v in enumerate(variants):
        if not isinstance(v, dict) or set(v) - {"name", "set"}:
            raise ConfigError(
                f"{where}: variant {i + 1} must be a mapping with 'name' and an optional 'set'"
            )
        name = v.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(
                f"{where}: variant {i + 1} needs a name of letters, digits, '.', '_' or '-', "
                f"got {name!r}"
            )
        if name in seen:
            raise ConfigError(f"{where}: two variants are named {name!r}")
        seen.add(name)
        own = _overrides(v.get("set"), f"{where}: variant {name!r} 'set'")
        try:
            config = load_config(path, [*common, *extra, *own])
        except ConfigError as err:
            raise ConfigError(f"{where}: variant {name!r}: {err}") from err
        built.append(Variant(name, own, config))
    return Grid(base, common, grid_budget, probe_every, tuple(built), data)


def read_grid(path: str | Path) -> Grid:
    """Read and check a grid file (YAML, at most 1 MiB)."""
    path = Path(path)
    refuse = text_files.Refusal(ConfigError, "grid file", "is it the right file?")
    data = text_files.read_yaml(path, limit=_MAX_GRID_BYTES, refuse=refuse)
    return parse_grid(data, f"grid file {path}")


def _claim_folder(out: Path, grid: Grid) -> None:
    """Write grid.yaml into ``out``, or check that ``out`` already holds this grid."""
    saved = out / GRID_FILE
    if saved.is_file():
        old = text_files.read_yaml(saved, refuse=text_files.Refusal(hint="choose another --out"))
        if old != grid.source:
            raise DsvaeError(
                f"{out} holds another grid ({saved} differs from this one); pass the same grid "
                "to continue it, or choose another --out"
            )
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DsvaeError(
            f"{out} exists and is not an ablation folder (no {GRID_FILE}); choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(saved, yaml.safe_dump(grid.source, sort_keys=False))


def _finished(run: Path) -> bool:
    return (run / "summary.json").is_file() and (run / "model" / "model.safetensors").is_file()


def _evaluated(run: Path, ev: Path) -> bool:
    report = ev / "sprites_eval.json"
    model = run / "model" / "model.safetensors"
    return report.is_file() and report.stat().st_mtime >= model.stat().st_mtime


def _dsvae(*args: str) -> list[str]:
    return [sys.executable, "-m", "dsvae.cli", *args]


@dataclass
class _Lane:
    grid: Grid
    out: Path
    data: Path
    judge: Path
    threads: int | None
    characters: int
    log_lock: threading.Lock = field(default_factory=threading.Lock)

    def say(self, text: str) -> None:
        with self.log_lock:
            print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def run(self, variant: Variant) -> dict[str, Any]:
        run = self.out / "runs" / variant.name
        ev = self.out / "evals" / variant.name
        env = dict(os.environ)
        if self.threads:
            env.update(OMP_NUM_THREADS=str(self.threads), MKL_NUM_THREADS=str(self.threads))
        if not _finished(run):
            resume = (run / "checkpoints" / "last.ckpt").is_file()
            if not resume and run.exists():
                shutil.rmtree(run)  # a start that never reached a checkpoint
            cmd = _dsvae(
                "train",
                self.grid.base,
                "--data",
                str(self.data / "train" if (self.data / "train").is_dir() else self.data),
                "--out",
                str(run),
                *(f"--set={o}" for o in (*self.grid.common, *self.grid.budget_overrides())),
                *(f"--set={o}" for o in variant.overrides),
                "--set=train.progress_bar=false",
                *([f"--set=train.threads={self.threads}"] if self.threads else []),
                *(
                    [
                        "--judge",
                        str(self.judge),
                        "--judge-every",
                        str(self.grid.probe_every),
                        "--judge-characters",
                        str(self.characters),
                    ]
                    if self.grid.probe_every
                    else []
                ),
                *(["--resume"] if resume else []),
            )
            self.say(f"train {variant.name}{' (resume)' if resume else ''}")
            if not self._call(cmd, run.with_suffix(".log"), env):
                return {"status": "failed", "stage": "train", "log": str(run.with_suffix(".log"))}
        if not _evaluated(run, ev):
            self.say(f"evaluate {variant.name} on the validation characters")
            cmd = _dsvae(
                "evaluate",
                "sprites",
                str(run),
                "--judge",
                str(self.judge),
                "--data",
                str(self.data),
                "--out",
                str(ev),
                "--split",
                "val",
                "--no-figures",
                "--seed",
                str(variant.config.train.seed),
            )
            if not self._call(cmd, ev.with_suffix(".log"), env):
                return {"status": "failed", "stage": "evaluate", "log": str(ev.with_suffix(".log"))}
        self.say(f"done {variant.name}")
        return {"status": "done"}

    @staticmethod
    def _call(cmd: list[str], log: Path, env: dict[str, str]) -> bool:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"$ {' '.join(cmd)}\n")
            fh.flush()
            return subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env) == 0


def run_grid(
    grid: Grid,
    data: str | Path,
    judge: str | Path,
    out: str | Path,
    *,
    lanes: int = 1,
    threads: int | None = None,
    characters: int = 32,
    only: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Train and score every variant of ``grid`` (see the module docstring); return the rows.

    ``lanes`` variants train at a time, each with ``threads`` CPU threads (None: torch's
    default). ``characters``: validation characters of the in-training probe. ``only``:
    names of the variants to run now (the table still lists all).
    """
    from dsvae.eval.judge import read_judge_json

    data, judge, out = Path(data), Path(judge), Path(out)
    if lanes < 1 or (threads is not None and threads < 1) or characters < 1:
        raise ConfigError("--lanes, --threads and --characters must be >= 1")
    train_dir = data / "train" if (data / "train").is_dir() else data
    if not (train_dir / "meta.json").is_file():
        raise DsvaeError(
            f"{data} is not a Sprites folder (no train/meta.json); build one with "
            "`dsvae data sprites --sheets DIR --out DIR`"
        )
    read_judge_json(judge)
    names = [v.name for v in grid.variants]
    unknown = sorted(set(only or []) - set(names))
    if unknown:
        raise ConfigError(f"no variant named {unknown[0]!r}; the grid has {names}")
    _claim_folder(out, grid)
    lane = _Lane(grid, out, data, judge, threads, characters)
    todo = [v for v in grid.variants if not only or v.name in only]
    statuses: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    def job(variant: Variant) -> None:
        with lock:
            statuses[variant.name] = {"status": "running"}
            write_table(grid, out, statuses)
        result = lane.run(variant)
        with lock:
            statuses[variant.name] = result
            write_table(grid, out, statuses)

    write_table(grid, out, statuses)
    with ThreadPoolExecutor(max_workers=lanes) as pool:
        for future in [pool.submit(job, v) for v in todo]:
            future.result()
    rows = write_table(grid, out, statuses)
    failed = [r["name"] for r in rows if r["status"] == "failed"]
    if failed:
        raise DsvaeError(
            f"variants {failed} failed (see their logs under {out}/runs and {out}/evals); "
            "fix the cause and run the grid again: the finished ones are kept"
        )
    return rows
