"""Parallel loads of several symbols under a bound on concurrency.

One symbol's failure never cancels the others: :func:`load_many` returns a
:class:`MultiLoadResult` that holds what loaded and, for what failed, why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from engine.errors import EXIT_FAILURE, GenesisError

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LoadFailure:
    """Why one key failed to load: the error's class, its one-line message and exit code."""

    error_type: str
    message: str
    exit_code: int = EXIT_FAILURE

    @classmethod
    def of(cls, error: BaseException) -> LoadFailure:
        message = " ".join(str(error).split()) or type(error).__name__
        code = error.exit_code if isinstance(error, GenesisError) else EXIT_FAILURE
        return cls(type(error).__name__, message, code)


@dataclass(frozen=True, slots=True)
class MultiLoadResult(Generic[K, T]):
    """The outcome of a parallel load: ``loaded`` by key and ``failed`` by key (input order)."""

    loaded: dict[K, T] = field(default_factory=dict)
    failed: dict[K, LoadFailure] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        """One line: how many loaded, and each failure."""
        text = f"{len(self.loaded)} loaded, {len(self.failed)} failed"
        if self.failed:
            text += ": " + "; ".join(f"{key}: {failure.message}" for key, failure in self.failed.items())
        return text

    def raise_for_failures(self) -> None:
        """Raise the first failure as a ``GenesisError`` with the same exit code."""
        for key, failure in self.failed.items():
            error = GenesisError(f"{key}: {failure.message}" if str(key) not in failure.message else failure.message)
            error.exit_code = failure.exit_code
            raise error


async def load_many(
    keys: Iterable[K], load: Callable[[K], Awaitable[T]], *, concurrency: int = 4
) -> MultiLoadResult[K, T]:
    """Run ``load(key)`` for every key, at most ``concurrency`` at a time.

    Exceptions are collected per key; cancelling the caller cancels every load.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    ordered = list(dict.fromkeys(keys))
    gate = asyncio.Semaphore(concurrency)
    outcomes: dict[K, tuple[bool, object]] = {}

    async def one(key: K) -> None:
        async with gate:
            try:
                outcomes[key] = (True, await load(key))
            except Exception as error:
                outcomes[key] = (False, LoadFailure.of(error))

    await asyncio.gather(*(one(key) for key in ordered))
    result: MultiLoadResult[K, T] = MultiLoadResult()
    for key in ordered:
        ok, value = outcomes[key]
        if ok:
            result.loaded[key] = value  # type: ignore[assignment]
        else:
            result.failed[key] = value  # type: ignore[assignment]
    return result
