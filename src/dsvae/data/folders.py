"""Atomic folder commits: a folder is built in a hidden sibling and renamed into place.

A crash leaves the old folder (or none), never half of one. Data sets, Sprites and speech
splits, imported videos and the Sprites judge check their target with :func:`check_target`;
the builders commit with :func:`commit_folder`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from dsvae.atomic import fsync_path, make_dirs
from dsvae.errors import DataError, WriteError, write_error

FRAMES_FILE = "frames.npy"
"""The file that marks a data set folder (see :mod:`dsvae.data.storage`)."""


def make_parents(out_dir: Path) -> list[Path]:
    """Create the folders above ``out_dir``; return those created (to remove on failure).
    A write fault is one line naming ``out_dir``."""
    try:
        return make_dirs(out_dir.parent)
    except OSError as err:
        raise write_error(err, out_dir) from err


def make_sibling(out_dir: Path, kind: str) -> Path:
    """Create the hidden folder ``.<name>.<kind>-<random>`` beside ``out_dir`` (umask applies)."""
    for _ in range(100):
        path = out_dir.parent / f".{out_dir.name}.{kind}-{secrets.token_hex(4)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
        except OSError as err:  # read-only, full, a file in the way, a name too long
            raise write_error(err, out_dir) from err
    raise DataError(f"could not create a temporary folder beside {out_dir}; clean up .{kind}-*")


@contextlib.contextmanager
def naming_target(tmp_dir: Path, out_dir: Path) -> Iterator[None]:
    """A WriteError inside the block names the folder the user asked for, ``out_dir``, not
    the hidden ``tmp_dir`` it is being built in."""
    try:
        yield
    except WriteError as err:
        raise WriteError(str(err).replace(str(tmp_dir), str(out_dir))) from err


def check_target(
    out_dir: Path,
    overwrite: bool,
    markers: tuple[str, ...] = (FRAMES_FILE,),
    kind: str = "dsvae data set",
    *,
    occupied: str = "exists",
    option: str = "--overwrite",
    not_ours: str | None = None,
) -> None:
    """Raise DataError if writing to ``out_dir`` would clobber something it should not.

    A non-empty folder is replaced only with ``overwrite`` and only if it holds one
    of the ``markers`` (files that show it is a ``kind`` built by dsvae). ``occupied``,
    ``option`` and ``not_ours`` word the two refusals ("X exists; pass --overwrite ...",
    "X is not empty and is not a dsvae data set (no frames.npy); ...").
    """
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise DataError(f"{out_dir} exists and is not a folder; choose another folder")
    if not any(out_dir.iterdir()):
        return
    if not overwrite:
        raise DataError(f"{out_dir} {occupied}; pass {option} or choose another folder")
    if not any((out_dir / marker).is_file() for marker in markers):
        not_ours = not_ours or f"is not a {kind} (no {markers[0]})"
        raise DataError(
            f"{out_dir} is not empty and {not_ours}; refusing to replace it, choose another folder"
        )


def commit_folder(
    tmp_dir: Path,
    out_dir: Path,
    overwrite: bool,
    markers: tuple[str, ...] = (FRAMES_FILE,),
    kind: str = "dsvae data set",
) -> None:
    """Rename the complete ``tmp_dir`` onto ``out_dir``, replacing an old folder last."""
    check_target(out_dir, overwrite, markers, kind)
    old = None
    if out_dir.exists():
        if any(out_dir.iterdir()):
            old = make_sibling(out_dir, "old")
            os.replace(out_dir, old / "data")
        else:
            out_dir.rmdir()
    try:
        os.rename(tmp_dir, out_dir)
    except BaseException:
        if old is not None:
            os.replace(old / "data", out_dir)
            old.rmdir()
        raise
    fsync_path(out_dir.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
