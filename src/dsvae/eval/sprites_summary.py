"""The machine-readable summary of the final Sprites runs (docs/results/sprites-summary.json).

One entry per final run, built from what the run folder and its test-split evaluation
wrote (nothing is typed in by hand)::

    {"runs": [{"name", "config", "posterior", "objective", "seed", "hardware",
               "wall_minutes", "epochs", "split", "table1": {"skin", "pants", "tops",
               "hair", "action"}, "acc"}]}

Rates are fractions in [0, 1]: ``table1`` holds the Table 1 disagreements and ``acc`` the
later-work action Acc. ``objective`` is ``elbo`` for the paper's objective (Eq. 2, any KL
weights) and ``contrastive`` when a run adds the later-work terms (``train.mi_weight``,
``train.contrast_weight`` or ``train.static_contrast_weight``). Only evaluations of the
test split are accepted: the summary reports final recipes, which are chosen on the
validation characters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from dsvae.atomic import atomic_write_json
from dsvae.errors import DataError
from dsvae.text_files import Refusal, read_json, read_yaml

TABLE1_ROWS = ("skin", "pants", "tops", "hair", "action")
EXTRA_TERMS = ("mi_weight", "contrast_weight", "static_contrast_weight")


def _read_json(path: Path, what: str) -> dict[str, Any]:
    data = read_json(path, refuse=Refusal(DataError, hint=what))
    if not isinstance(data, dict):
        raise DataError(f"{path} must hold a JSON object; {what}")
    return data


def hardware_name(machine: Mapping[str, Any]) -> str:
    """A one-line description of an evaluation's ``machine`` record."""
    if machine.get("cuda"):
        return str(machine["cuda"])
    cores = machine.get("cpu_count")
    return f"{cores}-core {machine.get('processor') or 'CPU'}, torch {machine.get('torch')}"


def summary_entry(
    name: str,
    config: str,
    run_dir: str | Path,
    eval_dir: str | Path,
    hardware: str | None = None,
) -> dict[str, Any]:
    """The entry of one final run: its training (``run_dir``) and test evaluation (``eval_dir``).

    ``config`` is the name of the config the run started from (e.g. ``sprites-cpu``);
    ``hardware`` describes the training machine (default: the evaluation's machine, as
    the evaluation recorded it). Raises :class:`DataError` when a file is missing or the
    evaluation is not of the test split.
    """
    run_dir, eval_dir = Path(run_dir), Path(eval_dir)
    summary = _read_json(run_dir / "summary.json", "is the run finished (dsvae train)?")
    report = _read_json(
        eval_dir / "sprites_eval.json", "evaluate the run first (dsvae evaluate sprites)"
    )
    if report.get("split") != "test":
        raise DataError(
            f"{eval_dir} scores the {report.get('split')!r} split; the summary holds test-split "
            "numbers only: run dsvae evaluate sprites RUN ... --split test"
        )
    saved = read_yaml(run_dir / "config.yaml", refuse=Refusal(DataError))
    train = saved.get("train", {}) if isinstance(saved, dict) else {}
    contrastive = any(float(train.get(term) or 0) > 0 for term in EXTRA_TERMS)
    seconds = summary.get("train_time_s", summary.get("wall_time_s"))
    return {
        "name": name,
        "config": config,
        "posterior": saved["model"]["posterior"],
        "objective": "contrastive" if contrastive else "elbo",
        "seed": int(train.get("seed", 0)),
        "hardware": hardware or hardware_name(report.get("machine", {})),
        "wall_minutes": None if seconds is None else round(float(seconds) / 60, 1),
        "epochs": summary.get("epochs"),
        "steps": summary.get("global_step"),
        "split": "test",
        "table1": {k: float(report["table1"][k]["disagreement"]) for k in TABLE1_ROWS},
        "acc": float(report["later_work"]["action_acc"]),
    }


def write_summary(entries: Iterable[Mapping[str, Any]], out: str | Path) -> Path:
    """Write ``{"runs": [...]}`` to ``out`` atomically, runs in the given order."""
    runs = [dict(e) for e in entries]
    names = [r["name"] for r in runs]
    if len(set(names)) != len(names):
        raise DataError(f"run names must be distinct, got {names}")
    out = Path(out)
    atomic_write_json(out, {"runs": runs})
    return out
