"""Every file dsvae reads, spoiled every way: one clear line, exit 2, nothing left behind,
never stuck (the matrix of tests/fuzz_artifacts.py).

By default the cases in :data:`DEFAULT` run: a subset of those that held when the whole
matrix last ran (``scripts/fuzz_artifacts.py``). ``--runslow`` runs every case. Each
command runs in a forked child through ``dsvae.cli.main``, so a hang is killed after
``DSVAE_FUZZ_TIMEOUT`` seconds (20) and fails its case instead of the suite.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path

import pytest

import fuzz_artifacts as fz
import fuzz_mutations as fm
from fuzz_runner import MEMORY_CAP, Outcome, run_isolated, snapshot

CASES = fz.all_cases()
BY_ID = {case.id: case for case in CASES}

DEFAULT: tuple[str, ...] = (
    "frames/flip/reconstruct", "frames/dev-null/reconstruct", "frames/shape-negative/train",
    "frames/shape-huge-int/reconstruct", "frames/shape-deep/train",
    "frames/dtype-object/reconstruct", "frames/header-list/train",
    "frames/header-length/train", "frames/fortran-order/train",
    "labels/member-text/reconstruct", "labels/member-huge/train",
    "meta/half/reconstruct", "meta/missing/train", "meta/top-string/train",
    "meta/huge-int/reconstruct", "meta/huge-size/reconstruct", "meta/shape-string/reconstruct",
    "meta/shape-object/train", "meta/name-list/train",
    "config/dev-zero/train",
    "run-config/tail-junk/resume", "run-config/top-list/export",
    "run-config/top-number/resume", "run-config/alias-loop/export",
    "run-config/alias-bomb/export", "run-config/python-tag/export",
    "run-config/section-string/export", "run-config/value-mapping/resume",
    "run-config/train-string/resume",
    "model-config/empty/generate", "model-config/fifo/generate",
    "model-config/not-utf8/generate", "model-config/top-null/reconstruct",
    "model-config/nan-literal/reconstruct", "model-config/section-list/generate",
    "model-config/value-string/reconstruct", "model-config/format-other/reconstruct",
    "model-config/format-version/reconstruct",
    "weights/dev-zero/reconstruct", "weights/header-length-huge/generate",
    "weights/shape-huge/reconstruct", "weights/offset-huge-int/reconstruct",
    "weights/header-deep/reconstruct", "weights/drop-tensor/generate",
    "ckpt/folder/resume", "ckpt/zip-of-text/export", "ckpt/only-state-dict/export",
    "ckpt/step-string/export",
    "metrics/header-only/resume", "metrics/ragged-rows/resume", "metrics/other-header/resume",
    "summary/head8/generate", "summary/dev-urandom/generate", "summary/length-string/generate",
    "summary/length-negative/generate", "summary/metrics-list/generate", "summary/top-list/generate",
    # hostile files refused since the read-side checks: one per class (docs/robustness.md)
    "labels/fifo/train", "meta/dev-zero/reconstruct", "meta/deep/train",
    "meta/shape-null/reconstruct", "config/not-utf8/train", "config/huge-int/train",
    "config/alias-bomb/train", "run-config/fifo/resume", "run-config/huge-size/export",
    "model-config/deep/generate", "model-config/huge-size/reconstruct",
    "weights/nan-weights/generate", "ckpt/only-state-dict/resume", "ckpt/no-state-dict/export",
    "ckpt/state-dict-list/resume", "ckpt/nan-weights/export",
)  # fmt: skip
"""The cases the default run takes: of the cases that held when the whole matrix last ran,
for each mutation the one whose id has the smallest CRC-32 (then one more for an artifact
or command left out), and one case of each kind of hostile file the read-side checks
refuse. ``scripts/fuzz_artifacts.py --json`` gives what holds now."""


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """The good case folder: a data set, config.yaml and a 2-step run (trained once)."""
    import dsvae.train  # noqa: F401 - imported once here, not in every forked child

    return fz.build_good(tmp_path_factory.mktemp("fuzz"))


def _params():
    for case in CASES:
        marks = () if case.id in DEFAULT else (pytest.mark.slow,)
        yield pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", list(_params()))
def test_a_spoiled_file_gives_one_clear_line(case: fz.Case, good: Path, tmp_path: Path):
    outcome, found = fz.run_case(case, good, tmp_path / "case")
    assert not found, f"{case.id}: {'; '.join(found)}\nstderr: {outcome.stderr[-3000:]}"


@pytest.mark.parametrize("command", list(fz.COMMANDS))
def test_every_command_works_on_the_good_files(command: str, good: Path, tmp_path: Path):
    """The control: unspoiled, each command succeeds and writes only its outputs."""
    folder = tmp_path / "case"
    shutil.copytree(good, folder, symlinks=True)
    if command == "export":  # a run stopped before it saved its model
        shutil.rmtree(folder / "run" / "model")
    argv, prefix = fz.COMMANDS[command]
    outcome = run_isolated(argv, folder)
    assert outcome.code == 0, outcome.stderr
    assert "Traceback" not in outcome.stderr
    touched = {p for p, kind in outcome.after.items() if outcome.before.get(p) != kind}
    touched |= set(outcome.before) - set(outcome.after)
    assert touched and all(p == prefix or p.startswith(prefix + "/") for p in touched), touched
    assert fz.EXPECTED_OUTPUT[command] in outcome.after


# ----------------------------------------------------------------------------- the matrix


def test_the_matrix_spoils_every_artifact_every_generic_way():
    assert len(CASES) >= 300 and len(BY_ID) == len(CASES)
    for artifact in fz.ARTIFACTS:
        names = {c.mutation.name for c in CASES if c.artifact == artifact}
        generic = {m.name for m in fm.GENERIC if m.kinds is None or artifact.kind in m.kinds}
        assert generic <= names, (artifact.id, generic - names)
        assert len(names) >= 12, artifact.id
        for command in artifact.commands:
            assert {c.mutation.name for c in CASES if c.artifact == artifact
                    and c.command == command} == names  # fmt: skip


def test_the_default_subset_is_known_and_covers_every_artifact():
    unknown = [i for i in DEFAULT if i not in BY_ID]
    assert not unknown, unknown
    assert len(set(DEFAULT)) == len(DEFAULT)
    assert {BY_ID[i].artifact.id for i in DEFAULT} == {a.id for a in fz.ARTIFACTS}
    assert {BY_ID[i].command for i in DEFAULT} == set(fz.COMMANDS)


def test_spoils_are_deterministic_and_hit_the_header(good: Path):
    frames = next(c for c in CASES if c.id == "frames/flip/train")
    first, second = frames.spoil(good), frames.spoil(good)
    original = (good / "data" / "frames.npy").read_bytes()
    assert first == second and first != original and len(first) == len(original)
    header = 10 + int.from_bytes(original[8:10], "little")
    diff = [i for i, (a, b) in enumerate(zip(first, original, strict=True)) if a != b]
    assert diff and max(diff) < header  # the data (any byte is valid) is untouched


def test_still_valid_tells_parsable_from_broken(good: Path):
    accepted = {i: BY_ID[i].accepted(good) for i in [
        "frames/fortran-order/train", "frames/half/train", "labels/missing/train",
        "ckpt/missing/resume", "config/top-null/train", "run-config/top-null/export",
        "model-config/dev-null/generate", "meta/fifo/train", "metrics/dev-zero/resume", "metrics/folder/resume",
        "ckpt/only-state-dict/export", "ckpt/only-state-dict/resume",
    ]}  # fmt: skip
    assert accepted == {
        "frames/fortran-order/train": {0, 2},  # a valid array: may be used
        "frames/half/train": {2},
        "labels/missing/train": {0, 2},  # labels are optional
        "ckpt/missing/resume": {0, 2},  # resumes from the newest epoch checkpoint
        "config/top-null/train": {0, 2},  # an empty YAML config means the defaults
        "run-config/top-null/export": {2},
        "model-config/dev-null/generate": {2},  # empty, like a 0-byte file
        "meta/fifo/train": {0, 2},  # an optional file that is not a file may be skipped
        "metrics/dev-zero/resume": {0, 2},  # metrics.csv may be rebuilt ...
        "metrics/folder/resume": {2},  # ... but a folder cannot be written over
        "ckpt/only-state-dict/export": {0, 2},  # export needs only the weights
        "ckpt/only-state-dict/resume": {2},
    }


def test_documents_get_a_5000_digit_integer_and_deep_nesting(good: Path):
    huge = BY_ID["model-config/huge-int/generate"].spoil(good)
    deep = BY_ID["run-config/deep/export"].spoil(good)
    assert b'"z_dim": ' + fm.DIGITS.encode() in huge
    assert b"z_dim: " + b"[" * fm.NESTING + b"]" * fm.NESTING in deep


# ----------------------------------------------------------------------------- the runner


def _hang(argv: list[str]) -> int:
    time.sleep(60)
    return 0


def _allocate(argv: list[str]) -> int:
    bytearray(MEMORY_CAP + (1 << 30))  # more than the child may have
    return 0


def _write_and_fail(argv: list[str]) -> int:
    import sys

    Path("stray.tmp").write_text("x")
    print("dsvae train: error: first", file=sys.stderr)
    print("dsvae train: error: second", file=sys.stderr)
    return 2


def test_a_hang_is_killed_and_reported(tmp_path: Path):
    start = time.monotonic()
    outcome = run_isolated(["train"], tmp_path, timeout_s=1, call=_hang)
    assert outcome.code is None and time.monotonic() - start < 10
    case = BY_ID["meta/fifo/train"]
    assert fz.problems(case, outcome, frozenset({2}))[0].startswith("hung: killed after")


def test_memory_is_capped_in_the_child(tmp_path: Path):
    outcome = run_isolated(["train"], tmp_path, call=_allocate)
    assert outcome.code == 1 and "MemoryError" in outcome.stderr
    assert outcome.peak_growth < fz.PEAK_LIMIT


def test_the_verdict_names_every_problem(tmp_path: Path):
    outcome = run_isolated(["train"], tmp_path, call=_write_and_fail)
    assert outcome.code == 2
    assert snapshot(tmp_path) == {"stray.tmp": outcome.after["stray.tmp"]}
    found = fz.problems(BY_ID["meta/empty/train"], outcome, frozenset({2}))
    assert found == ["2 lines on stderr", "left behind: stray.tmp"]
    assert fz.first_line(outcome) == "dsvae train: error: first"


def test_a_traceback_and_a_wrong_status_fail(tmp_path: Path):
    outcome = Outcome(1, "", "Traceback (most recent call last):\nKeyError: 'x'\n", 0.1, 0.1, 0)
    found = fz.problems(BY_ID["ckpt/empty/resume"], outcome, frozenset({2}))
    assert found == ["exit 1", "traceback: KeyError: 'x'"]
    assert fz.first_line(outcome) == "KeyError: 'x'"


def test_exit_0_may_write_only_its_outputs(tmp_path: Path):
    before = {"run": "dir"}
    after = {"run": "dir", "pictures": "dir", "pictures/a.png": "file:1", "x.tmp": "file:2"}
    outcome = Outcome(0, "", "", 0.1, 0.1, 0, before, after)
    found = fz.problems(BY_ID["summary/empty/generate"], outcome, frozenset({0, 2}))
    assert found == ["left behind: x.tmp"]


def test_the_default_subset_spans_the_mutations():
    kinds = Counter(BY_ID[i].mutation.name for i in DEFAULT)
    assert len(kinds) >= 30, kinds
