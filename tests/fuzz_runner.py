"""Run one ``dsvae`` command line in a forked child: killed when it hangs, its memory
capped and measured, its output and the folder it ran in recorded."""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HANG_S = float(os.environ.get("DSVAE_FUZZ_TIMEOUT", "20"))
"""A command still running after this many seconds hangs (and fails its case)."""
MEMORY_CAP = 3 << 30
"""The address space a command may add before allocations fail (so a runaway read cannot
take the machine's memory)."""


@dataclass
class Outcome:
    """What one command did: exit status (None: it hung and was killed), its output, its
    cost, and the case folder before and after."""

    code: int | None
    stdout: str
    stderr: str
    wall_s: float
    cpu_s: float
    peak_growth: int
    before: dict[str, str] = field(default_factory=dict)
    after: dict[str, str] = field(default_factory=dict)


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its type (and a hash of regular files); never opens
    anything that is not a regular file."""
    found: dict[str, str] = {}

    def walk(folder: Path) -> None:
        with os.scandir(folder) as entries:
            for entry in entries:
                rel = os.path.relpath(entry.path, root)
                if entry.is_symlink():
                    found[rel] = f"link:{os.readlink(entry.path)}"
                elif entry.is_dir():
                    found[rel] = "dir"
                    walk(Path(entry.path))
                elif entry.is_file():
                    digest = hashlib.sha1(Path(entry.path).read_bytes()).hexdigest()
                    found[rel] = f"file:{digest}"
                else:
                    found[rel] = "special"

    walk(root)
    return found


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _child(argv: list[str], cwd: Path, out: Path, err: Path, cap: int, call: Callable) -> int:
    """In the forked child: isolate, redirect, run the command line; return its status."""
    import logging

    os.setpgid(0, 0)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    os.chdir(cwd)
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = open(1, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if type(handler) is logging.StreamHandler:
                handler.setStream(sys.stderr)
    warnings.resetwarnings()  # Python's own defaults, not the test suite's "error"
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category)
    try:
        code = call(argv)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # noqa: BLE001 - what the console script would print
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def run_isolated(
    argv: list[str], cwd: Path, timeout_s: float = HANG_S, call: Callable | None = None
) -> Outcome:
    """Run ``dsvae.cli.main(argv)`` (or ``call(argv)``) in a forked child in ``cwd``; kill
    it after ``timeout_s``. The child's address space is capped at :data:`MEMORY_CAP` above
    ours."""
    if call is None:
        from dsvae.cli import main as call
    io_dir = Path(tempfile.mkdtemp(prefix="dsvae-fuzz-io-"))
    out, err = io_dir / "stdout", io_dir / "stderr"
    out.touch()
    err.touch()
    base_rss = _status_kib("VmRSS") * 1024
    cap = _status_kib("VmSize") * 1024 + MEMORY_CAP
    before = snapshot(cwd)
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            code = _child(argv, cwd, out, err, cap, call)
        finally:
            os._exit(code)
    code: int | None = None
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() - start > timeout_s:
            os.killpg(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            break
        time.sleep(0.01)
    wall = time.monotonic() - start
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # anything the command started and left running
    outcome = Outcome(
        code=code,
        stdout=out.read_text(encoding="utf-8", errors="replace"),
        stderr=err.read_text(encoding="utf-8", errors="replace"),
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_growth=usage.ru_maxrss * 1024 - base_rss,
        before=before,
        after=snapshot(cwd),
    )
    shutil.rmtree(io_dir, ignore_errors=True)
    return outcome
