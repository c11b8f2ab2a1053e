"""One run per study and SQLite store: an OS-level lock file next to the store (PostgreSQL: none, see below).

The lock is ``fcntl.flock`` on ``<db>.<study>.lock``. The kernel drops it when
the holding process exits for any reason (a crash, SIGKILL, a power cut on
a local disk), so a stale lock can never block the next night's run. The
holder writes its pid, host and start time into the file so that a second run
can say who holds it. The file itself is never deleted: unlinking a lock file
while another process waits on it would let two runs hold two different files.

A PostgreSQL study takes several drivers at once: each holds only the claims
it works on, under leases (``engine/store/claims.py``), so the lock of a
PostgreSQL store is held by every driver and stops none.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from engine.errors import LockHeldError, StoreError
from engine.paths import check_stored_name, named_path
from engine.store.url import DatabaseUrl, redacted, store_location
from engine.timestamps import iso_utc

log = logging.getLogger(__name__)


def lock_path(db: str | Path, study: str) -> Path:
    """``<db>.<study>.lock`` beside the store's real file (a name that cannot be a study's is refused).

    The path is resolved first, so a run that names the store through a
    symlink or another relative path meets the same lock.
    """
    db = Path(db).resolve()
    return named_path(db.parent, f"{db.name}.{check_stored_name(study, 'study name')}", ".lock")


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds a study's lock, as written into the lock file."""

    pid: int | None
    host: str
    started: float | None
    command: str = ""

    @property
    def started_iso(self) -> str:
        if self.started is None:
            return "an unknown time"
        return iso_utc(self.started)

    def describe(self) -> str:
        pid = "an unknown pid" if self.pid is None else f"pid {self.pid}"
        host = f" on {self.host}" if self.host and self.host != socket.gethostname() else ""
        return f"{pid}{host}, started {self.started_iso}"


def read_holder(path: str | Path) -> LockHolder | None:
    """The holder recorded in ``path`` (``None`` if the file is missing or empty)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    if not text.strip():
        return None
    try:
        raw = json.loads(text)
    except ValueError:
        return LockHolder(None, "", None)
    pid = raw.get("pid")
    started = raw.get("started")
    return LockHolder(
        pid if isinstance(pid, int) else None,
        str(raw.get("host", "")),
        float(started) if isinstance(started, (int, float)) else None,
        str(raw.get("command", "")),
    )


class StudyLock:
    """``with StudyLock(db, study):`` holds the study's lock or raises :class:`LockHeldError` (exit 75).

    Non-blocking: a second run never waits, it exits at once naming the holder.
    """

    def __init__(self, db: str | Path | DatabaseUrl, study: str) -> None:
        self.study = study
        self._fd: int | None = None
        self.acquired_at: float | None = None
        location = store_location(db)
        # The lock is a file beside a SQLite store; on PostgreSQL it is per driver (its claims' leases).
        self.db: Path | DatabaseUrl = location
        self.path: Path | None = lock_path(location, study) if isinstance(location, Path) else None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> StudyLock:
        """Take the lock, or raise :class:`LockHeldError` naming the holder's pid and start time."""
        if self._fd is not None:
            return self
        if self.path is None:
            # Several drivers on one PostgreSQL study is the point: each one's claims and their leases
            # (engine/store/claims.py) keep them from running a trial twice, so there is no study-wide lock.
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise StoreError(f"{self.path}: cannot create the study's lock file: {error.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self._wait_for_holder()
            who = holder.describe() if holder is not None else "another process"
            raise LockHeldError(
                f"study {self.study!r} in {self.db} is already running ({who}); lock {self.path}"
            ) from None
        except OSError as error:
            os.close(fd)
            raise StoreError(f"{self.path}: cannot lock: {error.strerror}") from None
        self.acquired_at = time.time()
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": self.acquired_at,
            "started_iso": iso_utc(self.acquired_at),
            "study": self.study,
            "db": str(self.db),
            "command": redacted(" ".join(sys.argv))[:500],
        }
        data = (json.dumps(record) + "\n").encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        self._fd = fd
        return self

    def _wait_for_holder(self, attempts: int = 20) -> LockHolder | None:
        """The holder's record (it writes it right after locking, so retry briefly)."""
        assert self.path is not None
        for _ in range(attempts):
            holder = read_holder(self.path)
            if holder is not None:
                return holder
            time.sleep(0.01)
        return None

    def release(self) -> None:
        """Clear the holder record and drop the lock (the file stays)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> StudyLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
