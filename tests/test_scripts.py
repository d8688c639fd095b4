"""The shell scripts under scripts/ parse, say how to run them, and fail fast without input."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "scripts").glob("*.sh"))


def test_there_are_scripts():
    names = {p.name for p in SCRIPTS}
    assert {
        "gpu_all.sh",
        "perf_gpu.sh",
        "sprites_gpu.sh",
        "sprites_cpu.sh",
        "speech_cpu.sh",
    } <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_parses_and_documents_its_use(script):
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -" in text  # stops on errors it does not handle itself
    assert f"scripts/{script.name}" in text  # the usage line names the script


@pytest.mark.parametrize(
    "script", ["gpu_all.sh", "perf_gpu.sh", "sprites_gpu.sh", "sprites_gpu_grid.sh"]
)
def test_gpu_scripts_refuse_to_start_without_an_output_folder(script, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("OUT", "SHEETS")}
    done = subprocess.run(
        ["bash", str(SCRIPTS[0].parent / script)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "set SHEETS" in done.stderr or "set OUT" in done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_sprites_cpu_script_refuses_a_missing_sheets_folder(tmp_path):
    env = dict(os.environ, SHEETS=str(tmp_path / "no-sheets"), DSVAE="false")
    done = subprocess.run(
        ["bash", str(SCRIPTS[0].parent / "sprites_cpu.sh")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "no sheets folder" in done.stderr and "set SHEETS" in done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written
