#!/usr/bin/env python
"""Time to result of one GPU run of scripts/gpu_all.sh: step rate, end-to-end rate, Table 1.

Reads what the run left in OUT: the step benchmark (``perf-b128.json``, or another
``--step`` report of benchmarks/bench.py), the training run's ``summary.json`` (its
end-to-end rate and the seconds by stage) and the evaluation (``eval/sprites_eval.json``),
and writes ``time_to_result.json`` and ``time_to_result.md`` beside them:

    python scripts/time_to_result.py out

The end-to-end rate counts the whole ``dsvae train`` process (start-up, validation,
checkpoints); its fraction of the step rate is what the loop around the step costs.
Missing pieces are reported as missing (null), not guessed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

TABLE1_ROWS = ("skin", "pants", "tops", "hair", "action")


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def collect(out: Path, step_report: str = "perf-b128.json") -> dict:
    """The time-to-result record of the run in ``out`` (values absent there are None)."""
    bench = _load(out / step_report)
    summary = _load(out / "summary.json")
    evaluation = _load(out / "eval" / "sprites_eval.json")
    step = None
    if bench:
        step = next(iter(bench["configs"].values()))["training"]["ours_seq_per_s"]
    end_to_end = summary.get("sequences_per_s") if summary else None
    record = {
        "step_seq_per_s": step,
        "end_to_end_seq_per_s": end_to_end,
        "fraction_of_step": end_to_end / step if step and end_to_end else None,
        "epochs": summary.get("epochs") if summary else None,
        "steps": summary.get("global_step") if summary else None,
        "time_s": summary.get("time_s") if summary else None,
        "split": evaluation.get("split") if evaluation else None,
        "table1": None,
        "acc": None,
    }
    if evaluation:
        record["table1"] = {k: evaluation["table1"][k]["disagreement"] for k in TABLE1_ROWS}
        record["acc"] = evaluation["later_work"]["action_acc"]
    if bench:
        record["machine"] = bench.get("machine")
    return record


def markdown(record: dict) -> str:
    def rate(value):
        return "—" if value is None else f"{value:,.1f}"

    fraction = record["fraction_of_step"]
    rows = [
        "| step seq/s | end-to-end seq/s | of the step | epochs | "
        + " | ".join(TABLE1_ROWS)
        + " | action Acc |",
        "|---" * (5 + len(TABLE1_ROWS)) + "|",
    ]
    table1 = record["table1"] or {}
    cells = [
        rate(record["step_seq_per_s"]),
        rate(record["end_to_end_seq_per_s"]),
        "—" if fraction is None else f"{fraction:.1%}",
        "—" if record["epochs"] is None else str(record["epochs"]),
        *("—" if k not in table1 else f"{100 * table1[k]:.2f}" for k in TABLE1_ROWS),
        "—" if record["acc"] is None else f"{100 * record['acc']:.2f}",
    ]
    rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the OUT folder of scripts/gpu_all.sh")
    parser.add_argument("--step", default="perf-b128.json", help="the step benchmark's report")
    args = parser.parse_args(argv)
    if not args.out.is_dir():
        print(f"time_to_result.py: error: {args.out} is not a folder", file=sys.stderr)
        return 2
    record = collect(args.out, args.step)
    table = markdown(record)
    (args.out / "time_to_result.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.out / "time_to_result.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
