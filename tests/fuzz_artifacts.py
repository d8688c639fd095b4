"""Hostile versions of every file dsvae reads, the commands that read them, and a verdict.

A *case* is (artifact, mutation, command): a copy of a good case folder (a data set, a
YAML config and a 2-step run) in which one file is spoiled, and one ``dsvae`` command
line that reads it. The command runs in a forked child (so a hang can be killed and
memory can be capped) through :func:`dsvae.cli.main`, exactly as the console script
calls it. The case *holds* when the command

* exits with a status the case accepts: 2, or 0 where the spoiled file is still valid;
* on status 2, prints exactly one line on stderr, ``dsvae CMD: error: ...``;
* prints no traceback, ends within :data:`fuzz_runner.HANG_S` seconds and uses less than
  :data:`PEAK_LIMIT` more memory than the process it was forked from;
* leaves the folder as it found it: the same paths afterwards, except what a successful
  command writes (the new run, the pictures, ``run/model``).

Used by ``tests/test_artifact_fuzz.py`` and ``scripts/fuzz_artifacts.py``.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from fuzz_mutations import (
    CKPT,
    CSV,
    DOCUMENT,
    EITHER,
    GENERIC,
    INNER,
    NPY,
    NPZ,
    REFUSE,
    SAFETENSORS,
    YAML_ONLY,
    Mutation,
    Spoil,
    Symlink,
    still_valid,
)
from fuzz_runner import Outcome, run_isolated

PEAK_LIMIT = 1 << 30
"""Memory a command may add to its parent's (resident set size) before it fails."""

# ----------------------------------------------------------------------------- commands

COMMANDS: dict[str, tuple[list[str], str]] = {
    # name: (argv, what a successful call writes: the one path under which it may add files)
    "train": (  # the overrides keep a config that was emptied (the defaults) tiny
        ["train", "config.yaml", "--data", "data", "--out", "new",
         "--set", "train.max_steps=2", "--set", "train.progress_bar=false",
         "--set", "model.hidden_dim=8", "--set", "model.frames.channels=[4,4]",
         "--set", "model.frames.strides=[2,2]", "--set", "model.frames.feature_dim=16"],
        "new",
    ),
    "resume": (
        ["train", "config.yaml", "--data", "data", "--out", "run", "--resume",
         "--set", "train.max_steps=4", "--set", "train.progress_bar=false"],
        "run",
    ),
    "export": (["export", "run"], "run/model"),
    "generate": (["generate", "run", "--out", "pictures", "--n", "2"], "pictures"),
    "reconstruct": (
        ["reconstruct", "run", "--data", "data", "--out", "pictures", "--n", "2"],
        "pictures",
    ),
}  # fmt: skip
"""The command lines, run inside a case folder (relative paths)."""

EXPECTED_OUTPUT = {
    "train": "new/model/model.safetensors",
    "resume": "run/summary.json",
    "export": "run/model/model.safetensors",
    "generate": "pictures",
    "reconstruct": "pictures",
}
"""A path that a command which exits with 0 must have written."""

# ----------------------------------------------------------------------------- artifacts


@dataclass(frozen=True)
class Artifact:
    """A file that dsvae reads: where it lies in a case folder and who reads it."""

    id: str
    path: str
    kind: str  # npy, npz, json, yaml, safetensors, ckpt, csv
    commands: tuple[str, ...]
    optional: bool = False  # the readers work without it
    lenient: bool = False  # the command rewrites it: any content may be read or replaced


ARTIFACTS = [
    Artifact("frames", "data/frames.npy", "npy", ("train", "reconstruct")),
    Artifact("labels", "data/labels.npz", "npz", ("train", "reconstruct"), optional=True),
    Artifact("meta", "data/meta.json", "json", ("train", "reconstruct"), optional=True),
    Artifact("config", "config.yaml", "yaml", ("train",)),
    Artifact("run-config", "run/config.yaml", "yaml", ("resume", "export")),
    Artifact("model-config", "run/model/config.json", "json", ("generate", "reconstruct")),
    Artifact("weights", "run/model/model.safetensors", "safetensors", ("generate", "reconstruct")),
    Artifact("ckpt", "run/checkpoints/last.ckpt", "ckpt", ("resume", "export")),
    Artifact("metrics", "run/metrics.csv", "csv", ("resume",), optional=True, lenient=True),
    Artifact("summary", "run/summary.json", "json", ("generate",), optional=True),
]
MUTATIONS = GENERIC + DOCUMENT + YAML_ONLY + INNER + NPY + NPZ + SAFETENSORS + CKPT + CSV

# ----------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One spoiled artifact and one command that reads it."""

    artifact: Artifact
    mutation: Mutation
    command: str

    @property
    def id(self) -> str:
        return f"{self.artifact.id}/{self.mutation.name}/{self.command}"

    @property
    def argv(self) -> list[str]:
        return list(COMMANDS[self.command][0])

    def spoil(self, good_root: Path) -> Spoil:
        return self.mutation.make((good_root / self.artifact.path).read_bytes(), self.artifact)

    def accepted(self, good_root: Path) -> frozenset[int]:
        """The exit statuses that hold for this case."""
        if (self.artifact.id, self.mutation.name, self.command) == ("ckpt", "missing", "resume"):
            # --resume without last.ckpt starts from the newest epochNNNN.ckpt: a kill between
            # the two writes of one save leaves exactly that folder (dsvae.train.run.resume_checkpoint)
            return EITHER
        accept = self.mutation.accept
        if isinstance(accept, dict):
            return accept.get(self.command, accept.get(self.artifact.id, REFUSE))
        if self.artifact.lenient:  # rewritten by the command: a folder cannot be written over
            return REFUSE if self.mutation.name == "folder" else EITHER
        if accept is not None:
            return accept
        spoil = self.spoil(good_root)
        if not isinstance(spoil, bytes):  # an optional file that is not a file may be skipped
            if self.artifact.optional:
                return EITHER
            if spoil != Symlink("/dev/null"):
                return REFUSE
            spoil = b""
        good = (good_root / self.artifact.path).read_bytes()
        return EITHER if still_valid(spoil, self.artifact, good) else REFUSE


def all_cases() -> list[Case]:
    """Every (artifact, mutation, command) of the matrix, in a fixed order."""
    cases = []
    for artifact in ARTIFACTS:
        for mutation in MUTATIONS:
            if mutation.kinds is not None and artifact.kind not in mutation.kinds:
                continue
            if mutation.artifacts is not None and artifact.id not in mutation.artifacts:
                continue
            cases.extend(Case(artifact, mutation, command) for command in artifact.commands)
    return cases


def apply(spoil: Spoil, path: Path) -> None:
    """Put ``spoil`` where the good file ``path`` was."""
    path.unlink()
    if isinstance(spoil, bytes):
        path.write_bytes(spoil)
    elif isinstance(spoil, Symlink):
        path.symlink_to(spoil.target)
    elif spoil.what == "folder":
        path.mkdir()
    elif spoil.what == "fifo":
        os.mkfifo(path)
    elif spoil.what != "missing":
        raise ValueError(spoil)


def prepare(case: Case, good_root: Path, folder: Path) -> Path:
    """A fresh copy of the good case folder under ``folder``, with the case's file spoiled."""
    shutil.copytree(good_root, folder, symlinks=True)
    apply(case.spoil(good_root), folder / case.artifact.path)
    return folder


# ----------------------------------------------------------------------------- verdict


def _is_progress(line: str) -> bool:
    return "%|" in line and ("it/s" in line or "s/it" in line)


def problems(case: Case, outcome: Outcome, accepted: frozenset[int]) -> list[str]:
    """What went wrong (an empty list: the case holds), most telling first."""
    found = []
    command, prefix = case.command, COMMANDS[case.command][1]
    err_lines = [
        line for line in outcome.stderr.splitlines() if line.strip() and not _is_progress(line)
    ]
    if outcome.code is None:
        found.append(f"hung: killed after {outcome.wall_s:.0f} s")
    elif outcome.code < 0:
        found.append(f"killed by signal {-outcome.code}")
    elif outcome.code not in accepted:
        found.append(f"exit {outcome.code}")
    if "Traceback" in outcome.stderr or "Traceback" in outcome.stdout:
        found.append(f"traceback: {_exception_line(outcome.stderr)[:160]}")
    elif outcome.code == 2:
        if len(err_lines) != 1:
            found.append(f"{len(err_lines)} lines on stderr")
        if not err_lines or not err_lines[-1].startswith(f"dsvae {case.argv[0]}: error: "):
            found.append("no 'dsvae CMD: error:' line")
    if outcome.peak_growth > PEAK_LIMIT:
        found.append(f"memory: peak +{outcome.peak_growth / 2**30:.1f} GiB")
    new = sorted(set(outcome.after) - set(outcome.before))
    gone = sorted(set(outcome.before) - set(outcome.after))
    if outcome.code == 0:
        new = [p for p in new if not _under(p, prefix)]
        gone = [p for p in gone if not _under(p, prefix)]
        rewrote = [p for p in changed(outcome, any_status=True) if not _under(p, prefix)]
        if rewrote:
            found.append(f"rewrote: {', '.join(rewrote[:3])}")
        if EXPECTED_OUTPUT[command] not in outcome.after:
            found.append(f"exit 0 without {EXPECTED_OUTPUT[command]}")
    if new:
        found.append(f"left behind: {', '.join(new[:3])}")
    if gone:
        found.append(f"removed: {', '.join(gone[:3])}")
    return found


def changed(outcome: Outcome, any_status: bool = False) -> list[str]:
    """Files that existed before and whose content a failed command (or, with
    ``any_status``, any command) changed."""
    if outcome.code == 0 and not any_status:
        return []
    return sorted(
        p for p, kind in outcome.before.items() if p in outcome.after and outcome.after[p] != kind
    )


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + os.sep)


EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(: |$)")


def _exception_line(stderr: str) -> str:
    """``Type: message`` of the last traceback in ``stderr`` (its message may span lines)."""
    tail = stderr.rsplit("Traceback (most recent call last):", 1)[-1].splitlines()
    named = [line for line in tail if EXCEPTION.match(line)]
    return named[-1] if named else "?"


def first_line(outcome: Outcome) -> str:
    """The message a person would read first: the error line, or a traceback's exception."""
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    if "Traceback" in outcome.stderr:
        return _exception_line(outcome.stderr)
    errors = [line for line in lines if line.startswith("dsvae ")]
    return (errors or lines or [""])[0]


# ----------------------------------------------------------------------------- the good folder

TINY_TRAIN = [
    "train.batch_size=8",
    "train.progress_bar=false",
    "train.max_steps=2",
    "train.log_every_n_steps=1",
]


def build_good(root: Path) -> Path:
    """``root/good``: a 20-sequence data set, a tiny config.yaml and a 2-step run of it."""
    from dsvae.config import load_config
    from dsvae.config_files import dump_yaml
    from dsvae.data import make_bouncing_ball_dataset
    from tiny import tiny_overrides

    good = root / "good"
    good.mkdir(parents=True)
    make_bouncing_ball_dataset(good / "data", n=20, length=4, size=16, seed=0)
    config = load_config("quickstart", tiny_overrides(*TINY_TRAIN))
    (good / "config.yaml").write_text(dump_yaml(config), encoding="utf-8")
    outcome = run_isolated(
        ["train", "config.yaml", "--data", "data", "--out", "run"], good, timeout_s=600
    )
    if outcome.code != 0:
        raise RuntimeError(f"the good run failed: {outcome.stderr}")
    for artifact in ARTIFACTS:
        if not (good / artifact.path).is_file():
            raise RuntimeError(f"the good run has no {artifact.path}")
    return good


def run_case(case: Case, good_root: Path, folder: Path) -> tuple[Outcome, list[str]]:
    """Spoil a copy of the good folder in ``folder``, run the command, judge it."""
    prepare(case, good_root, folder)
    outcome = run_isolated(case.argv, folder)
    return outcome, problems(case, outcome, case.accepted(good_root))
