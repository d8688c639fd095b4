"""Errors that the command line turns into one clear line and exit status 2."""

import errno
import signal


class DsvaeError(Exception):
    """A user-facing error: bad input, a missing file, an invalid config.

    The message says what was wrong and what to do. The CLI prints it without a
    traceback and exits with status 2.
    """


class ConfigError(DsvaeError, ValueError):
    """A config key is missing, unknown, of the wrong type or out of range."""


class DataError(DsvaeError, ValueError):
    """A data set is missing, empty, or has frames of the wrong dtype or shape."""


class ArgumentError(DsvaeError, ValueError):
    """An operation was called with arguments that do not fit: a count below 1, neither
    or both of two alternatives, a choice it does not know."""


class ModelFileError(DsvaeError):
    """A saved model folder is incomplete or its files are not what they claim."""


class WriteError(DsvaeError):
    """A file or folder could not be written: the file system is read-only or full, a part
    of the path is a file, permission is denied, a name is too long."""


class TrainingInterrupted(DsvaeError):
    """Training stopped on SIGINT (Ctrl-C) or SIGTERM at ``step``; ``checkpoint`` is the
    checkpoint written there (None if it stopped at once); ``resumable`` says whether the
    run folder holds any checkpoint to resume from."""

    def __init__(self, signum: int, step: int, checkpoint: object, resumable: bool) -> None:
        self.signum, self.step = int(signum), int(step)
        self.checkpoint, self.resumable = checkpoint, resumable
        super().__init__(self.describe())

    def describe(self, command: str | None = None) -> str:
        """One line: what stopped, what was saved, and how to go on (with ``command``, the
        command that started the run, without ``--resume``)."""
        name = signal.Signals(self.signum).name
        saved = f"saved {self.checkpoint}" if self.checkpoint else "no new checkpoint saved"
        if self.resumable:
            how = f"continue with: {command} --resume" if command else "continue with --resume"
        else:
            how = (
                f"start it again in place with: {command}"
                if command
                else "rerun the same command without --resume to start it again in place"
            )
        return f"training stopped by {name} at step {self.step}; {saved}; {how}"


# what to do about a failed write, by errno
_WRITE_HINTS = {
    errno.ENOSPC: "free space or choose another --out",
    errno.EDQUOT: "free space (your disk quota is used up) or choose another --out",
    errno.EROFS: "choose a folder on a writable file system with --out",
    errno.EACCES: "choose a folder you may write to with --out",
    errno.EPERM: "choose a folder you may write to with --out",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another --out",
    errno.EEXIST: "a file is in the way where a folder is needed; choose another --out",
    errno.EISDIR: "a folder is in the way where a file is needed; choose another --out",
    errno.ENAMETOOLONG: "choose a shorter --out",
}


def os_error_line(err: OSError, path: object = None) -> str:
    """``err`` as "PATH: CAUSE; what to do" (``path`` defaults to the file it names)."""
    where = path
    if where is None:
        names = [str(f) for f in (err.filename, err.filename2) if f is not None]
        where = " -> ".join(names) or "a file"
    cause = err.strerror or str(err) or type(err).__name__
    hint = _WRITE_HINTS.get(err.errno, "check the path or choose another --out")
    return f"{where}: {cause}; {hint}"


def write_error(err: OSError, path: object = None) -> WriteError:
    """``err`` as one line: "cannot write PATH: CAUSE; what to do"."""
    return WriteError(f"cannot write {os_error_line(err, path)}")
