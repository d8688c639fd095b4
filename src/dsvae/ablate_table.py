"""The table of an ablation grid (:mod:`dsvae.ablate`): ``ablation.json`` and ``ablation.md``.

One row per variant, read from what its run and evaluation folders hold now: the
training summary and the validation scores (Table 1 disagreement, the later-work action
Acc and the swap diagnostic).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsvae.atomic import atomic_write_json, atomic_write_text
from dsvae.config_files import to_dict
from dsvae.errors import DsvaeError
from dsvae.text_files import read_json

if TYPE_CHECKING:
    from dsvae.ablate import Grid, Variant

TABLE_ROWS = ("skin", "pants", "tops", "hair", "action", "motion", "direction")


def _read_object(path: Path) -> dict[str, Any]:
    """A JSON object that a run or an evaluation wrote (an object is checked for: a damaged
    file is named, not read as an empty row)."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise DsvaeError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def variant_row(grid: Grid, variant: Variant, out: Path, status: dict[str, Any]) -> dict[str, Any]:
    """One row of the table: the variant, its training and its validation scores."""
    run, ev = out / "runs" / variant.name, out / "evals" / variant.name
    row: dict[str, Any] = {
        "name": variant.name,
        "set": list(variant.overrides),
        "status": status.get("status", "pending"),
    }
    if "log" in status:
        row["log"] = status["log"]
    summary = run / "summary.json"
    if summary.is_file():
        s = _read_object(summary)
        row.update(
            steps=s.get("global_step"),
            epochs=s.get("epochs"),
            # the whole run's training time (across resumes), where the summary has it
            train_minutes=round(s.get("train_time_s", s.get("wall_time_s", 0)) / 60, 1),
            val_elbo=s.get("metrics", {}).get("val/elbo"),
        )
    report = ev / "sprites_eval.json"
    if report.is_file():
        r = _read_object(report)
        row["validation_sequences"] = r.get("test_sequences")
        row["table1"] = {k: r["table1"][k]["disagreement"] for k in TABLE_ROWS}
        row["action_acc"] = r["later_work"]["action_acc"]
        row["swap"] = {k: r["inferred_factors"]["swap"][k] for k in TABLE_ROWS}
        row["reconstruction"] = {k: r["inferred_factors"]["reconstruction"][k] for k in TABLE_ROWS}
    return row


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}"


def table_markdown(grid: Grid, rows: list[dict[str, Any]], machine: str) -> str:
    budget = ", ".join(f"{v:g} {k}" for k, v in grid.budget.items())
    lines = [
        f"# Ablation of `{grid.base}` ({budget} per variant)",
        "",
        "Scored on the validation characters each run held out of the training split "
        "(never the test split). Table 1 disagreement and the swap diagnostic in %, lower is "
        "better; action Acc (later-work protocol) in %, higher is better.",
        "",
        f"Common overrides: {', '.join(f'`{o}`' for o in grid.common) or 'none'}. Machine: {machine}.",
        "",
        "| variant | overrides | steps | epochs | min | val ELBO | skin | pants | tops | hair | action "
        "| motion | direction | action Acc | swap skin | swap direction | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t, sw = r.get("table1", {}), r.get("swap", {})
        elbo = r.get("val_elbo")
        lines.append(
            f"| {r['name']} | {' '.join(f'`{o}`' for o in r['set']) or '—'} | "
            f"{r.get('steps', '—')} | {r.get('epochs', '—')} | {r.get('train_minutes', '—')} | "
            f"{'—' if elbo is None else f'{elbo:.1f}'} | "
            + " | ".join(_pct(t.get(k)) for k in TABLE_ROWS)
            + f" | {_pct(r.get('action_acc'))} | {_pct(sw.get('skin'))} | "
            f"{_pct(sw.get('direction'))} | {r['status']} |"
        )
    return "\n".join(lines) + "\n"


def write_table(grid: Grid, out: Path, statuses: dict[str, dict[str, Any]]) -> list[dict]:
    """Write ablation.json and ablation.md from what the grid folder holds now."""
    from dsvae.machine import machine_description

    rows = [variant_row(grid, v, out, statuses.get(v.name, {})) for v in grid.variants]
    for row in rows:  # a variant finished by an earlier call of the runner
        if row["status"] == "pending" and "table1" in row:
            row["status"] = "done"
    machine = machine_description()
    cores = f"{machine['cpu_count']} cores" + (f", {machine['cuda']}" if machine["cuda"] else "")
    where = f"{machine['processor']}, {cores}, torch {machine['torch']}"
    atomic_write_json(
        out / "ablation.json",
        {
            "config": grid.base,
            "set": list(grid.common),
            "budget": grid.budget,
            "split": "val",
            "machine": machine,
            "variants": rows,
            "configs": {v.name: to_dict(v.config) for v in grid.variants},
        },
    )
    atomic_write_text(out / "ablation.md", table_markdown(grid, rows, where))
    return rows
