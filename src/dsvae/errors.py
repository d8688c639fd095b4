"""Errors that the command line turns into one clear line and exit status 2."""


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
