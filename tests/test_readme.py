"""The README's Python snippet runs, and CI runs the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_python_snippet_runs(tmp_path, monkeypatch, capsys):
    (snippet,) = blocks("python")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "elbo" in printed
    assert namespace["predicted"].shape == namespace["x"].shape == (4, 10, 1, 32, 32)
    assert namespace["samples"].shape == (3, 10, 1, 32, 32)
    assert (tmp_path / "runs" / "ball" / "model" / "model.safetensors").is_file()


def test_ci_runs_the_readme_test_command():
    test_commands = [
        line for block in blocks("bash") for line in block.splitlines() if line.endswith("pytest")
    ]
    assert len(test_commands) == 1
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_commands[0] in ci
