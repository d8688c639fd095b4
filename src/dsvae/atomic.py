"""Atomic writes: a crash mid-write leaves the old file (or no file), never half of one."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dsvae.errors import DsvaeError, WriteError, write_error


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it onto ``path``.

    On any exception the temporary file (and any folder made for it) is removed and
    ``path`` is untouched. A write that fails for want of space, a read-only file system or
    a path that cannot be a folder raises :class:`~dsvae.errors.WriteError` naming ``path``.
    """
    path = Path(path)
    created: list[Path] = []
    try:
        created = make_dirs(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as err:
        remove_dirs(created)
        raise write_error(err, path) from err
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~current_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp_path, path)
        fsync_path(path.parent)
    except OSError as err:
        if err.errno is None:  # e.g. PIL's "cannot write mode X": not the file system's
            raise
        raise write_error(err, path) from err
    except DsvaeError:
        raise
    except Exception as err:
        # torch.save and safetensors turn a full disk into RuntimeErrors of their own
        if disk_full(path.parent):
            raise write_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), path) from err
        raise
    finally:
        with contextlib.suppress(OSError):
            tmp_path.unlink(missing_ok=True)
        if not path.exists():
            remove_dirs(created)


def make_dirs(folder: str | os.PathLike) -> list[Path]:
    """``mkdir -p folder``; return the folders it created, outermost first."""
    missing = missing_dirs(folder)
    Path(folder).mkdir(parents=True, exist_ok=True)
    return missing


def missing_dirs(folder: str | os.PathLike) -> list[Path]:
    """``folder`` and those of its parents that do not exist, outermost first."""
    folder = Path(folder)
    return [p for p in (folder, *folder.parents) if not p.exists()][::-1]


def remove_dirs(created: list[Path]) -> None:
    """Remove the folders :func:`make_dirs` created, innermost first, if they are empty."""
    for folder in reversed(created):
        with contextlib.suppress(OSError):
            folder.rmdir()


def nearest_existing(path: str | os.PathLike) -> Path:
    """``path`` or its nearest ancestor that exists."""
    path = Path(os.path.abspath(path))
    return next(p for p in (path, *path.parents) if p.exists())


def check_folder_path(path: str | os.PathLike, option: str = "--out") -> None:
    """Raise WriteError unless ``path`` is, or can become, a folder this process may write:
    not a file, not under a file, not on a read-only file system (checked before any write).
    """
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise WriteError(f"{option} {path} is a file, not a folder; choose another {option}")
        for parent in path.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise WriteError(
                        f"{option} {path} lies under {parent}, which is a file, not a folder; "
                        f"choose another {option}"
                    )
                break
        where = nearest_existing(path)
        if not os.access(where, os.W_OK):
            read_only = os.statvfs(where).f_flag & os.ST_RDONLY
            cause = "is on a read-only file system" if read_only else "is not writable by you"
            raise WriteError(f"cannot write {path}: {where} {cause}; choose another {option}")
    except OSError as err:  # e.g. a name too long
        raise write_error(err, path) from err


def disk_full(folder: str | os.PathLike, slack: int = 64 * 1024) -> bool:
    """True if the file system holding ``folder`` has less than ``slack`` bytes free."""
    try:
        return shutil.disk_usage(nearest_existing(folder)).free < slack
    except OSError:
        return False


def check_free_space(path: str | os.PathLike, needed: int, what: str) -> None:
    """Raise WriteError if the file system that will hold ``path`` has less than ``needed``
    bytes free (``what`` names the file, e.g. "frames.npy")."""
    where = nearest_existing(path)
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        return  # cannot tell; the write itself will say
    if needed > free:
        raise WriteError(
            f"cannot write {path}: {what} needs {_mib(needed)} but {where} has {_mib(free)} free; "
            "free space or choose another --out"
        )


def _mib(size: int) -> str:
    return f"{size / 2**20:.2f} MiB ({size} bytes)"


def preallocate(fd: int, start: int, stop: int) -> None:
    """Reserve bytes ``start .. stop`` of the open file ``fd`` on disk, so that writes through
    a memory map cannot fault (SIGBUS) on a full disk: this raises OSError (ENOSPC) instead."""
    try:
        os.posix_fallocate(fd, start, stop - start)
    except OSError as err:
        if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
        block = b"\0" * 2**20  # no fallocate on this file system: write the zeros for real
        os.lseek(fd, start, os.SEEK_SET)
        for at in range(start, stop, len(block)):
            os.write(fd, block[: min(len(block), stop - at)])
        os.fsync(fd)


def current_umask() -> int:
    """The process's file-creation mask (read without changing it for good)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file or folder to disk (best effort for folders on odd file systems)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)

    atomic_write(path, write)


def atomic_save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    atomic_write(path, write)
