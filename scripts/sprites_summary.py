"""Write docs/results/sprites-summary.json from the final Sprites runs and their test evaluations.

The manifest is a YAML list; each item names a run, the config it started from, its run
folder and the folder of its test-split evaluation (``dsvae evaluate sprites RUN --split
test``), and optionally the training hardware:

    - {name: sprites-cpu-full-s0, config: sprites-cpu, run: runs/sprites-cpu-full-s0,
       eval: eval/sprites-cpu-full-s0, hardware: "2-core AMD EPYC CPU"}

    python scripts/sprites_summary.py final-runs.yaml --out docs/results/sprites-summary.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from dsvae.errors import DsvaeError
from dsvae.eval.sprites_summary import summary_entry, write_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", type=Path, help="YAML list of {name, config, run, eval}")
    parser.add_argument("--out", type=Path, default=Path("docs/results/sprites-summary.json"))
    args = parser.parse_args(argv)
    try:
        items = yaml.safe_load(args.manifest.read_text(encoding="utf-8"))
        if not isinstance(items, list) or not items:
            raise DsvaeError(f"{args.manifest} must be a non-empty YAML list of runs")
        for item in items:
            missing = {"name", "config", "run", "eval"} - set(item or {})
            if missing:
                raise DsvaeError(f"{args.manifest}: an entry lacks {sorted(missing)}: {item}")
        entries = [
            summary_entry(i["name"], i["config"], i["run"], i["eval"], i.get("hardware"))
            for i in items
        ]
        out = write_summary(entries, args.out)
    except (OSError, yaml.YAMLError, DsvaeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({len(entries)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
