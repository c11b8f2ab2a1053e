"""Start the process backend's fork server early, from a module that imports nothing heavy.

The command line calls :func:`start_fork_server` before it imports the engine:
the server's imports (numpy, numba, the kernels) then overlap the driver's own.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import multiprocessing
import os
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

_T = TypeVar("_T")

#: What the fork server imports once; every worker forks from it warm.
PRELOAD = "engine.optimize.backends._preload"


#: The study file whose kernels a starting fork server loads (set for the server's start only).
STUDY_ENV = "GENESIS_FORK_SERVER_STUDY"


def start_fork_server(study_file: str | Path | None = None) -> None:
    """Start the process backend's fork server in the background (idempotent, returns at once).

    ``study_file``: the study its workers will run; a server started here loads
    that study's kernels (:mod:`~engine.optimize.backends._preload`) rather than
    the generic one, so each worker finds them in memory.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return  # (Windows) workers are spawned instead
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([PRELOAD])
    from multiprocessing import forkserver

    before = os.environ.get(STUDY_ENV)
    if study_file is not None and os.path.isfile(study_file):  # (a pipe, /dev/fd/63, is read once: ours)
        os.environ[STUDY_ENV] = str(Path(study_file).absolute())
    try:
        with contextlib.suppress(Exception):
            forkserver.ensure_running()
    finally:  # the server has its copy of the environment; this process's stays as it was
        if before is None:
            os.environ.pop(STUDY_ENV, None)
        else:
            os.environ[STUDY_ENV] = before


def call_in_fork_server(function: Callable[..., _T], *args: Any) -> _T:
    """``function(*args)`` in a child of the fork server, which has numpy, numba and the kernels loaded,
    so that this process need not load them (blocks: call it from a thread). Raises what the call
    raised (as a ``RuntimeError`` naming it), or ``RuntimeError`` when the child died."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([PRELOAD])  # (if the server must start again, as warm as the first)
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_answer, args=(sender, function, args), name="genesis-call", daemon=True)
    child.start()
    sender.close()
    try:
        ok, value = receiver.recv()
    except EOFError:
        child.join()
        raise RuntimeError(f"{function.__name__}: its process ended without an answer (exit {child.exitcode})") from None
    finally:
        receiver.close()
    child.join()
    if not ok:
        raise RuntimeError(f"{function.__name__}: {value}")
    return value


class ForkedCall:
    """A child of the fork server forked now that runs one call later, so that its fork (and its
    ``warm``, run in the child meanwhile) overlap what the caller does until then.

    :meth:`call` blocks (call it from a thread) and can be made once; :meth:`close` ends a child
    never called (it leaves as soon as it sees the pipe closed).
    """

    def __init__(self, warm: Callable[[], Any] | None = None) -> None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([PRELOAD])
        self._connection, theirs = ctx.Pipe()
        self._child = ctx.Process(target=_serve, args=(theirs, warm), name="genesis-call", daemon=True)
        self._child.start()
        theirs.close()

    def call(self, function: Callable[..., _T], *args: Any) -> _T:
        """``function(*args)`` in the child, as :func:`call_in_fork_server` runs it."""
        try:
            self._connection.send((function, args))
            ok, value = self._connection.recv()
        except (EOFError, OSError):
            self._child.join()
            raise RuntimeError(
                f"{function.__name__}: its process ended without an answer (exit {self._child.exitcode})") from None
        finally:
            self._connection.close()
        self._child.join()
        if not ok:
            raise RuntimeError(f"{function.__name__}: {value}")
        return value

    def close(self) -> None:
        """End the child without a call (no-op after :meth:`call`)."""
        self._connection.close()


def _serve(connection: Any, warm: Callable[[], Any] | None) -> None:
    """(In a :class:`ForkedCall`'s child) warm up, then answer the one call sent (none: leave)."""
    if warm is not None:
        with contextlib.suppress(Exception):  # a warm-up only: the call reports any real failure
            warm()
    try:
        function, args = connection.recv()
    except (EOFError, OSError):
        return
    _answer(connection, function, args)


def _answer(sender: Any, function: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """(In the child) send ``(True, result)`` or ``(False, "Error: message")``."""
    try:
        answer: tuple[bool, Any] = (True, function(*args))
    except BaseException as error:  # the caller decides; nothing to print here
        answer = (False, f"{type(error).__name__}: {error}")
    sender.send(answer)
    sender.close()


def in_fork_server() -> bool:
    """Whether this process is a ``forkserver`` (started by ``multiprocessing`` with ``-c``)."""
    return any("multiprocessing.forkserver import main" in arg for arg in getattr(sys, "orig_argv", ()))


def exit_quickly() -> None:
    """In the fork server: end at exit without the interpreter's teardown (no-op elsewhere).

    The server ends when its last client (the command) has gone; tearing down
    numba and LLVM then takes 0.3-0.8 s on a loaded box, all the while holding
    the command's stdout and stderr open, so a caller reading them (a cron
    wrapper, ``$(genesis run ...)``) waits that long after the command exited.
    Its workers never run it: they leave by ``os._exit`` already.
    """
    if not in_fork_server():
        return
    server = os.getpid()

    def leave() -> None:
        if os.getpid() == server:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(0)

    atexit.register(leave)


def freeze_for_forks() -> None:
    """In the fork server: move every object it holds into the collector's permanent generation
    (no-op elsewhere).

    A forked worker's first full collection would otherwise walk every object of
    numpy, numba and LLVM it inherited, writing each one's header and so copying
    nearly every page of the server: 40-50 ms of CPU per worker before its first
    trial, and again for every collection of its run. Frozen, they are never walked.
    """
    if in_fork_server():
        gc.freeze()


#: Larger study files are not peeked at (the loader's own cap applies to them).
PEEK_LIMIT_BYTES = 1 << 20


def peek_study(study_file: str | Path) -> dict[str, Any] | None:
    """The study file's TOML as a plain table, read capped and not validated (``None`` when it is
    unreadable: the study loader reports it properly)."""
    from engine.config import read_text
    from engine.errors import InputError

    if not os.path.isfile(study_file):  # a pipe (``<(...)``) can be read once: the loader's read
        return None
    try:  # capped: an endless file is the loader's to refuse, never read whole here
        return tomllib.loads(read_text(Path(study_file), cap=PEEK_LIMIT_BYTES))
    except (InputError, ValueError, RecursionError):  # hostile files (nested too deep...): the loader says so
        return None


def wants_process_backend(study_file: str | Path, backend: str | None = None) -> bool:
    """Whether a run of ``study_file`` (``backend``: the command line's override) uses worker processes.

    A cheap peek at ``[execution] backend`` (default ``process``); an unreadable file
    says no, and the study loader reports it properly.
    """
    if backend is not None:
        return backend == "process"
    table = peek_study(study_file)
    execution = table.get("execution", {}) if table is not None else None
    return isinstance(execution, dict) and execution.get("backend", "process") == "process"
