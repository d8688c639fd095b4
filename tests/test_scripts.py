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


def _sprites_cpu(cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPTS[0].parent / "sprites_cpu.sh")],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_sprites_cpu_script_refuses_a_missing_sheets_folder(tmp_path):
    done = _sprites_cpu(
        tmp_path, dict(os.environ, SHEETS=str(tmp_path / "no-sheets"), DSVAE="false")
    )
    assert done.returncode == 2
    assert "no sheets folder" in done.stderr and "set SHEETS" in done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


FAKE_DSVAE = r"""#!/usr/bin/env bash
# records each call and writes what the real command would leave behind
echo "$*" >> "$CALLS"
cmd=$1; shift
out=""
while [ $# -gt 0 ]; do
  case "$1" in --out) out=$2; shift ;; esac
  shift
done
case "$cmd" in
  data) mkdir -p "$out/test" && echo '{}' > "$out/test/meta.json" ;;
  judge) mkdir -p "$out" && echo x > "$out/judge.safetensors" ;;
  train) mkdir -p "$out/model" && echo '{}' > "$out/summary.json" && echo x > "$out/model/model.safetensors" ;;
  evaluate) sleep 0.01; mkdir -p "$out" && echo '{}' > "$out/sprites_eval.json" ;;
esac
"""


def _fake_chain(tmp_path, **env_extra):
    fake = tmp_path / "fake-dsvae"
    fake.write_text(FAKE_DSVAE)
    fake.chmod(0o755)
    sheets = tmp_path / "sheets"
    sheets.mkdir(exist_ok=True)
    calls = tmp_path / "calls.txt"
    env = dict(
        os.environ,
        SHEETS=str(sheets),
        DSVAE=str(fake),
        PYTHON="echo",  # the summary step: prints its arguments instead of reading the fakes
        CALLS=str(calls),
        **env_extra,
    )
    done = _sprites_cpu(tmp_path, env)
    lines = calls.read_text().splitlines() if calls.exists() else []
    return done, lines


def test_sprites_cpu_script_trains_and_evaluates_every_recipe_and_seed(tmp_path):
    done, calls = _fake_chain(tmp_path, SEEDS="0 1", MINUTES="7")
    assert done.returncode == 0, done.stderr
    assert calls[0].startswith("data sprites --sheets")
    assert calls[1].startswith("judge sprites --data data/sprites")
    trains = [c for c in calls if c.startswith("train ")]
    evals = [c for c in calls if c.startswith("evaluate ")]
    assert len(trains) == 6 and len(evals) == 6  # three recipes, two seeds
    assert trains[0].startswith("train sprites-cpu --set model.posterior=factorised ")
    assert trains[1].startswith("train sprites-cpu --set model.posterior=full ")
    assert trains[2].startswith("train sprites-cpu-contrastive --data data/sprites/train ")
    assert "--out runs/sprites/sprites-cpu-full-s1 " in trains[4]
    assert all("--judge judges/sprites" in c and "train.max_time_minutes=7" in c for c in trains)
    assert "train.seed=1" in trains[3] and "train.seed=0" in trains[0]
    assert all("--split test" in c for c in evals)
    manifest = (tmp_path / "eval/sprites/manifest.yaml").read_text().splitlines()
    assert len(manifest) == 6
    assert manifest[2] == (
        "- {name: sprites-cpu-contrastive-s0, config: sprites-cpu-contrastive, "
        "run: runs/sprites/sprites-cpu-contrastive-s0, eval: eval/sprites/sprites-cpu-contrastive-s0}"
    )
    assert "eval/sprites/manifest.yaml --out eval/sprites/sprites-summary.json" in done.stdout

    # a second start skips what is finished and trains nothing again
    again, calls2 = _fake_chain(tmp_path, SEEDS="0 1")
    assert again.returncode == 0, again.stderr
    assert calls2 == calls
    assert again.stdout.count("(finished)") == 6


def test_sprites_cpu_script_resumes_an_interrupted_run(tmp_path):
    run = tmp_path / "runs/sprites/sprites-cpu-full-s0"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints/last.ckpt").write_text("x")
    done, calls = _fake_chain(tmp_path, RECIPES="full")
    assert done.returncode == 0, done.stderr
    (train,) = [c for c in calls if c.startswith("train ")]
    assert train.endswith("--resume")


@pytest.mark.parametrize(
    ("env", "message"),
    [({"RECIPES": "full bogus"}, "unknown recipe 'bogus'"), ({"SEEDS": "0 x"}, "SEEDS must be")],
)
def test_sprites_cpu_script_refuses_bad_recipes_and_seeds(tmp_path, env, message):
    done, calls = _fake_chain(tmp_path, **env)
    assert done.returncode == 2
    assert message in done.stderr
    assert calls == []
