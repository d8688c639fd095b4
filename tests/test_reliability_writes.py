"""Environment faults, failed starts, interrupts and concurrent runs (docs/robustness.md).

Every command that writes, on a read-only and on a full file system (small tmpfs mounts,
so these tests need root; they skip otherwise): exit status 2, one line that names the
path and the cause, no traceback, nothing left behind. Then ``--out`` paths that cannot be
folders, Lightning options with bad values, Ctrl-C and SIGTERM in a real ``dsvae train``
process, a start that failed before its first checkpoint, two trainings of one folder and
the lock of a process that died.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dsvae.cli import main
from dsvae.data import make_bouncing_ball_dataset
from dsvae.train.checkpoints import AtomicCheckpointIO
from dsvae.train.lifecycle import LOCK_FILE, RunLock
from tiny import as_set, tiny_overrides

ROOT = Path(__file__).resolve().parents[1]
SHEETS = ROOT.parent / "shared" / "data" / "lpc-sprites"
TINY = as_set(tiny_overrides("train.batch_size=8", "train.progress_bar=false"))
PROGRESS = re.compile(r"^[\w ]+:\s+\d+%\|")


# ----------------------------------------------------------------------------- file systems


class Mount:
    """A small tmpfs at ``path`` that a test can make read-only or fill up."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read_only(self) -> None:
        _mount("-o", "remount,ro", str(self.path))

    def fill(self, leave: int = 0) -> None:
        """Fill the file system with one file, then give back about ``leave`` bytes."""
        filler = self.path / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * 4096)
            os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
        finally:
            os.close(fd)
        assert shutil.disk_usage(self.path).free <= leave + 4096

    def empty(self) -> None:
        """Remove the filler again."""
        (self.path / "filler").unlink()


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def mount(tmp_path) -> Iterator[Callable[..., Mount]]:
    """``mount(size="1m")``: a new tmpfs under ``tmp_path``, unmounted after the test."""
    mounted: list[Path] = []

    def make(size: str = "1m") -> Mount:
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs (a full or read-only file system) needs root")
        path = tmp_path / f"fs{len(mounted)}"
        path.mkdir()
        try:
            _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
        except (OSError, subprocess.CalledProcessError) as err:
            detail = getattr(err, "stderr", "") or err
            pytest.skip(f"cannot mount a tmpfs here ({str(detail).strip()})")
        mounted.append(path)
        return Mount(path)

    yield make
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


# ----------------------------------------------------------------------------- inputs


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict[str, Path]:
    """A data set, a trained run and a GIF, outside any mount."""
    root = tmp_path_factory.mktemp("good")
    ball = make_bouncing_ball_dataset(root / "ball", n=20, length=4, size=16, seed=0)
    assert main(_train(ball, root / "run", "train.max_steps=2")) == 0
    frames = np.zeros((12, 16, 16, 3), dtype=np.uint8)
    for t, f in enumerate(frames):
        f[t : t + 4, 4:12] = 200
    images = [Image.fromarray(f) for f in frames]
    (root / "videos").mkdir()
    images[0].save(root / "videos" / "clip.gif", save_all=True, append_images=images[1:])
    return {"root": root, "ball": ball, "run": root / "run", "videos": root / "videos"}


def _train(data: Path, out: Path, *settings: str) -> list[str]:
    return ["train", "quickstart", "--data", str(data), "--out", str(out), *TINY,
            *as_set(list(settings))]  # fmt: skip


def _snapshot(root: Path) -> dict[str, int]:
    """Every path under ``root`` with its size (folders -1)."""
    return {
        str(p.relative_to(root)): p.stat().st_size if p.is_file() else -1 for p in root.rglob("*")
    }


def _fails_with_one_line(argv: list[str], capsys, pattern: str) -> str:
    """Run ``dsvae argv``: exit 2, one line ``dsvae CMD: error: ...`` matching ``pattern``."""
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not PROGRESS.match(line)]
    assert code == 2, err
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith(f"dsvae {argv[0]}: error: "), err
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


# ----------------------------------------------------------------------------- every write path


@dataclass
class WritePath:
    """One command that writes: ``build(base, fs)`` prepares it and returns its arguments;
    ``target`` is the path the error must name (relative to the mount)."""

    id: str
    build: Callable[[dict, Path], list[str]]
    target: str
    size: str = "1m"


def _run_in(base: dict, fs: Path) -> Path:
    """A copy of the trained run on the mount, without its model/ (to export again)."""
    run = fs / "run"
    shutil.copytree(base["run"], run, ignore=shutil.ignore_patterns("model", "eval"))
    return run


def _sprites(base: dict, fs: Path) -> list[str]:
    if not SHEETS.is_dir():
        pytest.skip(f"needs the LPC sheets at {SHEETS}")
    return ["data", "sprites", "--sheets", str(SHEETS), "--out", str(fs / "out"),
            "--characters", "1"]  # fmt: skip


WRITE_PATHS = [
    WritePath("data-bouncing-ball", lambda b, fs: [
        "data", "bouncing-ball", "--out", str(fs / "out"), "--n", "20", "--length", "4",
        "--size", "16"], "out"),
    WritePath("data-video", lambda b, fs: [
        "data", "video", "--in", str(b["videos"]), "--out", str(fs / "out"), "--length", "4",
        "--size", "16"], "out"),
    WritePath("data-sprites", _sprites, "out", size="4m"),
    WritePath("train-run-folder", lambda b, fs: _train(b["ball"], fs / "run"), "run"),
    WritePath("export", lambda b, fs: ["export", str(_run_in(b, fs))], "run/model"),
    WritePath("generate", lambda b, fs: [
        "generate", str(b["run"]), "--out", str(fs / "out"), "--n", "2"], "out"),
    WritePath("evaluate", lambda b, fs: [
        "evaluate", "bouncing-ball", str(b["run"]), "--data", str(b["ball"]), "--out",
        str(fs / "out"), "--observed", "2"], "out"),
]  # fmt: skip
CAUSES = {"read-only": r"(?i)read-only file system", "full": r"No space left on device|MiB .* free"}


@pytest.mark.parametrize("fault", list(CAUSES))
@pytest.mark.parametrize("case", WRITE_PATHS, ids=[c.id for c in WRITE_PATHS])
def test_a_write_to_a_read_only_or_full_file_system_is_one_line(
    case: WritePath, fault: str, base, mount, capsys
):
    fs = mount(case.size)
    argv = case.build(base, fs.path)
    fs.read_only() if fault == "read-only" else fs.fill()
    before = _snapshot(fs.path)
    line = _fails_with_one_line(argv, capsys, CAUSES[fault])
    assert str(fs.path / case.target) in line, line  # the user's path, not a temporary one
    assert _snapshot(fs.path) == before, "something was left behind"


def test_frames_npy_is_reserved_before_it_is_mapped(base, mount, capsys, monkeypatch):
    """With the free-space check out of the way, a full disk still fails cleanly when the
    blocks of the memory-mapped frames.npy are reserved (a write through the map would die
    of SIGBUS)."""
    import dsvae.data.storage as storage

    monkeypatch.setattr(storage, "check_free_space", lambda *args: None)
    fs = mount()
    fs.fill(leave=8192)
    before = _snapshot(fs.path)
    argv = ["data", "bouncing-ball", "--out", str(fs.path / "out"), "--n", "200", "--length",
            "4", "--size", "16"]  # fmt: skip
    line = _fails_with_one_line(argv, capsys, r"No space left on device")
    assert str(fs.path / "out" / "frames.npy") in line
    assert _snapshot(fs.path) == before


def test_a_video_import_that_fills_the_disk_midway_is_one_line(base, mount, capsys):
    """Some windows fit, then the disk is full: not mistaken for an unreadable video."""
    fs = mount()
    fs.fill(leave=12 * 1024)
    src = base["root"] / "long-videos"
    if not src.exists():
        src.mkdir()
        frames = np.random.default_rng(0).integers(0, 255, (64, 16, 16, 3), dtype=np.uint8)
        images = [Image.fromarray(f) for f in frames]
        images[0].save(src / "long.gif", save_all=True, append_images=images[1:])
    before = _snapshot(fs.path)
    argv = ["data", "video", "--in", str(src), "--out", str(fs.path / "out"), "--length", "4",
            "--size", "16", "--stride", "1"]  # fmt: skip
    line = _fails_with_one_line(argv, capsys, r"No space left on device")
    assert str(fs.path / "out" / "frames.npy") in line and "skipped" not in line
    assert _snapshot(fs.path) == before


def test_a_checkpoint_on_a_full_disk_is_one_line_and_the_run_starts_again_in_place(
    base, mount, capsys
):
    """config.yaml fits, the first checkpoint does not: one line naming the checkpoint, no
    temporary file; once there is space the same command starts the run again in place."""
    fs = mount()
    run = fs.path / "run"
    argv = _train(base["ball"], run, "train.max_steps=2")
    fs.fill(leave=48 * 1024)
    line = _fails_with_one_line(argv, capsys, r"No space left on device")
    assert re.search(rf"{re.escape(str(run / 'checkpoints'))}/\S+\.ckpt", line), line
    assert (run / "config.yaml").is_file()
    assert not list(run.rglob("*.ckpt")) and not list(run.rglob(".*.tmp"))
    fs.empty()
    capsys.readouterr()
    assert main(argv) == 0, capsys.readouterr().err
    state = AtomicCheckpointIO().load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert state["global_step"] == 2 and (run / "model" / "model.safetensors").is_file()


# ----------------------------------------------------------------------------- --out


OUT_COMMANDS = {
    "data": lambda b, out: ["data", "bouncing-ball", "--out", str(out), "--n", "4"],
    "train": lambda b, out: _train(b["ball"], out),
    "generate": lambda b, out: ["generate", str(b["run"]), "--out", str(out)],
    "evaluate": lambda b, out: ["evaluate", "bouncing-ball", str(b["run"]), "--data",
                                str(b["ball"]), "--out", str(out)],
}  # fmt: skip
BAD_OUT = {
    "a-file": (lambda t: t / "file", r"is a file, not a folder"),
    "under-a-file": (lambda t: t / "file" / "sub" / "out", r"lies under .*file, which is a file"),
    "name-too-long": (lambda t: t / ("x" * 300) / "out", r"File name too long; choose a shorter"),
}


@pytest.mark.parametrize("bad", list(BAD_OUT))
@pytest.mark.parametrize("command", list(OUT_COMMANDS))
def test_an_out_that_cannot_be_a_folder_is_one_line(command, bad, base, tmp_path, capsys):
    (tmp_path / "file").write_text("mine")
    path, pattern = BAD_OUT[bad]
    before = _snapshot(tmp_path)
    _fails_with_one_line(OUT_COMMANDS[command](base, path(tmp_path)), capsys, pattern)
    assert _snapshot(tmp_path) == before and (tmp_path / "file").read_text() == "mine"


# ----------------------------------------------------------------------------- Lightning options


@pytest.mark.parametrize(
    "setting, pattern",
    [
        ("train.accelerator=tpu", r"train\.accelerator is 'tpu' but no TPU .*available: cpu"),
        ("train.devices=-3", r"train\.devices is -3.*use a number of devices >= 1"),
        ("train.strategy=bogus", r"train\.strategy is 'bogus'; choose one of auto, .*ddp"),
        ("train.precision='7'", r"train\.precision is '7'; choose one of auto, 32-true"),
        ("train.precision=7", r"train\.precision is 7; choose one of auto, 32-true"),
    ],
)
def test_a_bad_lightning_option_writes_nothing(setting, pattern, base, tmp_path, capsys):
    _fails_with_one_line(_train(base["ball"], tmp_path / "run", setting), capsys, pattern)
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- interrupts

# ``dsvae train`` that touches NOTE after each step and sleeps a little, so that a signal
# can be sent while it trains
CHILD = """
import pathlib, sys, time
import lightning.pytorch as pl
import dsvae.train.run as run
from dsvae.cli import main

class Steps(pl.Callback):
    def on_train_batch_end(self, trainer, *args):
        pathlib.Path(sys.argv[1]).write_text(str(trainer.global_step))
        time.sleep(0.25)

build = run.build_trainer
run.build_trainer = lambda config, run_dir, extra=None: build(config, run_dir, [*(extra or []), Steps()])
sys.exit(main(sys.argv[2:]))
"""
STEPS = 40


def _start_training(base: dict, run: Path, note: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    argv = _train(base["ball"], run, f"train.max_steps={STEPS}")
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(note), *argv],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for_a_step(child: subprocess.Popen, note: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not note.exists():
        if child.poll() is not None:
            raise AssertionError(f"training ended before its first step:\n{child.stderr.read()}")
        if time.monotonic() > deadline:
            child.kill()
            raise AssertionError("training did not reach its first step")
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_saves_a_checkpoint_and_the_printed_command_resumes_it(
    signum, base, tmp_path, capsys
):
    run, note = tmp_path / "run", tmp_path / "note"
    child = _start_training(base, run, note)
    _wait_for_a_step(child, note)
    child.send_signal(signum)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 128 + signum, err
    name = signal.Signals(signum).name
    last = err.strip().splitlines()[-1]
    found = re.fullmatch(
        rf"dsvae train: training stopped by {name} at step (\d+); saved (\S+); "
        r"continue with: (dsvae train .* --resume)",
        last,
    )
    assert found, err
    step, saved, command = int(found[1]), Path(found[2]), found[3]
    assert saved == run / "checkpoints" / "last.ckpt" and "Traceback" not in err
    assert 1 <= step < STEPS
    assert AtomicCheckpointIO().load_checkpoint(saved)["global_step"] == step
    assert not list(run.rglob(".*.tmp")) and not (run / "model").exists()
    capsys.readouterr()
    assert main(shlex.split(command)[1:]) == 0, capsys.readouterr().err
    state = AtomicCheckpointIO().load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert state["global_step"] == STEPS
    rows = [r.split(",") for r in (run / "metrics.csv").read_text().splitlines()[1:]]
    steps = [int(r[0]) for r in rows]
    logged = [(r[0], tuple(v == "" for v in r[2:])) for r in rows]  # step, columns filled
    assert steps == sorted(steps) and len(set(logged)) == len(logged)  # none logged twice


def test_a_second_training_of_a_folder_refuses_and_a_dead_trainers_lock_does_not_block(
    base, tmp_path, capsys
):
    run, note = tmp_path / "run", tmp_path / "note"
    child = _start_training(base, run, note)
    try:
        _wait_for_a_step(child, note)
        before = _snapshot(run)
        line = _fails_with_one_line(
            _train(base["ball"], run, "train.max_steps=2"),
            capsys,
            rf"{re.escape(str(run))} is being trained by process {child.pid} \(lock .*\); "
            "wait for it or choose another --out",
        )
        assert "--resume" not in line
        assert {k: v for k, v in _snapshot(run).items() if "ckpt" not in k}.keys() <= before.keys()
    finally:
        child.kill()
        child.communicate()
    # killed before its first checkpoint: its pid stays in the lock file, yet the same
    # command starts the run again in place
    assert (run / LOCK_FILE).read_text().strip() == str(child.pid)
    assert not list(run.rglob("*.ckpt"))
    capsys.readouterr()
    assert main(_train(base["ball"], run, "train.max_steps=2")) == 0, capsys.readouterr().err
    assert (run / "model" / "model.safetensors").is_file()


def test_a_lock_file_naming_a_dead_process_does_not_block(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    (tmp_path / LOCK_FILE).write_text(dead.stdout)
    lock = RunLock.acquire(tmp_path)
    try:
        assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        with pytest.raises(Exception, match=rf"being trained by process {os.getpid()}"):
            RunLock.acquire(tmp_path)  # a second open file: refused, even in one process
    finally:
        lock.release()
    RunLock.acquire(tmp_path).release()


# ----------------------------------------------------------------------------- failed starts


def test_a_start_that_failed_before_its_first_checkpoint_is_started_again_in_place(
    base, tmp_path, capsys
):
    """What a start killed before its first checkpoint leaves: config.yaml, a few rows of
    metrics.csv, an empty checkpoints/ with a half-written temporary file."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(base["run"] / "config.yaml", run / "config.yaml")
    (run / "metrics.csv").write_text("step,epoch,train/elbo\n1,0,-500.0\n")
    (run / "checkpoints" / ".last.ckpt.x1y2.tmp").write_bytes(b"half")
    argv = _train(base["ball"], run, "train.max_steps=2", "train.log_every_n_steps=1")
    _fails_with_one_line([*argv, "--resume"], capsys, r"has no checkpoint yet; rerun the same "
                         "command without --resume to start it again in place")  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 0, capsys.readouterr().err
    rows = (run / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["step", "0", "1"]  # the old row went too
    assert not list(run.rglob(".*.tmp"))
    state = AtomicCheckpointIO().load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert state["global_step"] == 2
