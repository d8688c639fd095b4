"""The ending every evaluation shares: timing, the machine, a JSON and a Markdown file."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dsvae.atomic import atomic_write_json, atomic_write_text
from dsvae.machine import machine_description


def finish_report(
    stem: str | Path,
    report: dict[str, Any],
    markdown: str,
    start: float,
    *,
    markdown_in_json: bool = False,
    to_json: Callable[[dict[str, Any]], Any] = lambda report: report,
    md_suffix: str = "",
) -> dict[str, Any]:
    """Stamp ``report`` with ``wall_time_s`` since ``start`` (``time.perf_counter``) and the
    ``machine``; write ``STEM.json`` (``to_json(report)``) and ``STEM.md``; return ``report``
    with its ``markdown``.

    ``markdown_in_json`` also puts the Markdown into the JSON file; ``md_suffix`` is
    appended to the Markdown file only.
    """
    stem = Path(stem)
    report["wall_time_s"] = round(time.perf_counter() - start, 1)
    report["machine"] = machine_description()
    if markdown_in_json:
        report["markdown"] = markdown
    stem.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(stem.with_suffix(".json"), to_json(report))
    report["markdown"] = markdown
    atomic_write_text(stem.with_suffix(".md"), markdown + md_suffix)
    return report
