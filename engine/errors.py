"""The error hierarchy of Genesis and the exit code each error maps to.

Every error a user can cause (a bad file, key, row or flag) derives from
:class:`InputError` and carries a one-line message naming what was wrong; the
command line prints that line on stderr and exits with :attr:`exit_code`.
"""

from __future__ import annotations

import errno

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_CRITICAL_ALERT = 3
EXIT_CHECK_FAILED = 4  # genesis check found look-ahead or a too-short lookback
EXIT_LOCKED = 75


class GenesisError(Exception):
    """Base class of Genesis errors: a runtime failure (exit code 1)."""

    exit_code: int = EXIT_FAILURE


class InputError(GenesisError):
    """Bad input from the user: usage, config or data (exit code 2)."""

    exit_code = EXIT_BAD_INPUT


class ConfigError(InputError):
    """A study file, theme or config file is invalid."""


class DataError(InputError):
    """Market data is missing, malformed or violates the bar rules."""


class StrategyError(InputError):
    """An unknown strategy, or a parameter that is unknown, mistyped or out of bounds."""


class StoreError(GenesisError):
    """The SQLite store is corrupt, foreign or unusable."""

    exit_code = EXIT_BAD_INPUT


class StoreWriteError(GenesisError):
    """A write to a sound store failed (disk full, I/O error): a runtime failure, exit code 1."""


def out_of_room(error: BaseException) -> bool:
    """Whether ``error`` is a full disk, quota or file-size limit (the run stops; the study stays sound)."""
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


class NetworkError(GenesisError):
    """A remote service failed after retries (exit code 1)."""


class CriticalAlertError(GenesisError):
    """A critical alert fired during a run (exit code 3)."""

    exit_code = EXIT_CRITICAL_ALERT


class LockHeldError(GenesisError):
    """Another run holds the study's lock (exit code 75)."""

    exit_code = EXIT_LOCKED


#: How many characters of a value an error message quotes.
QUOTE_LIMIT = 100


def quoted(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr`` of a value (of ``str(value)`` for non-strings) for an error message,
    cut to about ``limit`` characters so that a 50 MB field stays a one-line error."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"
