#!/usr/bin/env python
"""Spoil every file dsvae reads in every way of the fuzz matrix; print what holds.

    PYTHONPATH=src python scripts/fuzz_artifacts.py                 # the whole matrix
    PYTHONPATH=src python scripts/fuzz_artifacts.py --only meta/    # cases whose id has it
    PYTHONPATH=src python scripts/fuzz_artifacts.py --json out.json

Trains one tiny 2-step run, then for each case (artifact/mutation/command, defined in
tests/fuzz_artifacts.py) copies the good folder, spoils one file and runs the command
that reads it. Prints a Markdown table, one row per case: holds or fails, the exit
statuses it accepts, what it did, and the first line of stderr. Exits 1 if a case fails.
The whole matrix takes about 10 minutes on 2 cores (each hang costs DSVAE_FUZZ_TIMEOUT,
20 s by default).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import fuzz_artifacts as fz  # noqa: E402


def _cell(text: str, width: int = 150) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", default=[], help="run cases whose id has this")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--work", type=Path, help="folder for the cases (default: a temporary one)")
    args = parser.parse_args(argv)

    import dsvae.cli  # noqa: F401 - paid once, before the forks
    import dsvae.train  # noqa: F401

    cases = [c for c in fz.all_cases() if not args.only or any(o in c.id for o in args.only)]
    work = args.work or Path(tempfile.mkdtemp(prefix="dsvae-fuzz-"))
    start = time.monotonic()
    good = fz.build_good(work)
    print(
        f"good run built in {time.monotonic() - start:.0f} s; {len(cases)} cases", file=sys.stderr
    )
    rows, results = [], []
    for n, case in enumerate(cases):
        accepted = case.accepted(good)
        outcome, found = fz.run_case(case, good, work / f"case{n:04d}")
        verdict = "holds" if not found else "fails"
        did = "hung" if outcome.code is None else f"exit {outcome.code}"
        notes = fz.changed(outcome)
        rows.append(
            f"| `{case.id}` | {case.mutation.what} | {'/'.join(map(str, sorted(accepted)))} "
            f"| {verdict} | {did} | {_cell('; '.join(found))} | {_cell(fz.first_line(outcome))} "
            f"| {outcome.wall_s:.1f} |"
        )
        results.append({
            "id": case.id, "holds": not found, "code": outcome.code, "problems": found,
            "accepted": sorted(accepted), "first_line": fz.first_line(outcome),
            "wall_s": round(outcome.wall_s, 2), "cpu_s": round(outcome.cpu_s, 2),
            "changed": notes,
        })  # fmt: skip
        print(
            f"{n + 1}/{len(cases)} {case.id}: {verdict} {did} {'; '.join(found)}", file=sys.stderr
        )
    held = sum(r["holds"] for r in results)
    print(f"{held} of {len(results)} cases hold ({time.monotonic() - start:.0f} s)\n")
    print("| case | spoiled file | accepts | verdict | did | problems | first line of stderr | s |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0 if held == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
