"""The sampler protocol: ask for points, tell their results, save and restore state.

Every sampler is seeded and deterministic. The executor works in batches: it
asks a batch, runs the points in any order, tells the results **in ask order**,
checkpoints :meth:`Sampler.get_state` and asks the next batch. Restoring a
checkpointed state into a fresh sampler (:meth:`Sampler.set_state`) and asking
the same batch again continues the exact sequence an uninterrupted run gives.

What the executor must do for that to hold:

* tell every point of a batch before asking the next one, including points it
  did not run because they were already stored (tell their stored value);
* ask the same size of batch again after a restore (for grid, random and
  genetic any size gives the same sequence; ``ask(k)`` is always a prefix of
  ``ask(n)`` for ``k <= n``; TPE's later points depend on where batches end);
* prefer :attr:`Sampler.preferred_batch` when it is set (the genetic sampler's
  generation).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from engine.errors import ConfigError
from engine.optimize.space import Space

#: Consecutive rejected draws (infeasible or already produced) before a sampler
#: that draws at random declares itself exhausted.
MAX_REJECTIONS = 1000
STATE_VERSION = 1


class Sampler(ABC):
    """Ask/tell base class. Subclasses implement ``_ask``, ``_state`` and ``_restore``."""

    name: ClassVar[str]
    #: Whether :meth:`ask` ignores what :meth:`tell` reported (grid, random): the executor may then
    #: ask and plan the next batch while the tail of the current one runs.
    asks_ahead: ClassVar[bool] = False

    def __init__(self, space: Space, *, seed: int = 0, direction: str = "maximize") -> None:
        if direction not in ("maximize", "minimize"):
            raise ConfigError(f"search.direction: expected maximize or minimize, got {direction!r}")
        self.space = space
        self.seed = int(seed)
        self.direction = direction

    # ------------------------------------------------------------------ protocol

    def ask(self, n: int) -> list[dict[str, Any]]:
        """Up to ``n`` new points (full parameter dicts, fixed values included).

        Fewer, or none, when the sampler is exhausted (or, for the genetic
        sampler, while the current generation still awaits results). A point's
        key is never produced twice.
        """
        if n <= 0 or self.exhausted:
            return []
        return self._ask(n)

    @abstractmethod
    def _ask(self, n: int) -> list[dict[str, Any]]: ...

    def tell(self, params: dict[str, Any], value: float | None) -> None:  # noqa: B027 - optional hook
        """Report the objective of a point it produced; ``None`` (or NaN) for failed or pruned."""

    @property
    def listens(self) -> bool:
        """Whether :meth:`tell` does anything (a study tells a sampler that ignores it nothing)."""
        return type(self).tell is not Sampler.tell

    @property
    @abstractmethod
    def exhausted(self) -> bool:
        """No point will ever be produced again."""

    @property
    def preferred_batch(self) -> int | None:
        """A batch size this sampler works best with (``None``: the executor's choice)."""
        return None

    def get_state(self) -> dict[str, Any]:
        """JSON-serialisable state, enough to continue exactly in a fresh sampler."""
        return {
            "sampler": self.name,
            "version": STATE_VERSION,
            "space": self.space.fingerprint(),
            "seed": self.seed,
            "direction": self.direction,
            **self._state(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from a state saved by :meth:`get_state` of the same kind of sampler."""
        for field, expected in (
            ("sampler", self.name),
            ("version", STATE_VERSION),
            ("space", self.space.fingerprint()),
            ("seed", self.seed),
            ("direction", self.direction),
        ):
            if state.get(field) != expected:
                raise ConfigError(
                    f"checkpoint: the saved sampler state has {field} {state.get(field)!r},"
                    f" this study has {expected!r} (was the study file changed? start a new study)"
                )
        self._restore(state)

    @abstractmethod
    def _state(self) -> dict[str, Any]: ...

    @abstractmethod
    def _restore(self, state: dict[str, Any]) -> None: ...

    # ------------------------------------------------------------------ helpers

    def fitness(self, value: float | None) -> float | None:
        """The value to maximise (negated for ``minimize``); ``None`` for failures and NaN."""
        if value is None:
            return None
        number = float(value)
        if math.isnan(number):
            return None
        return number if self.direction == "maximize" else -number

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seed={self.seed}, {self.space!r})"


def encode_float(value: float | None) -> float | str | None:
    """A float for a JSON state: non-finite values as strings (JSON has no infinity)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else repr(number)


def decode_float(value: float | str | None) -> float | None:
    """Inverse of :func:`encode_float`."""
    return None if value is None else float(value)
