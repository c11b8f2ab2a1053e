"""Immutable records of studies and trials, as stored and as returned to callers.

Records cross process boundaries (worker -> orchestrator) and the store
boundary; they hold plain data only (str, int, float, dict, tuple), never
numpy objects, so they encode to JSON without surprises.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class TrialState(enum.StrEnum):
    """Where a trial ended (``running`` only while it is in flight)."""

    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    PRUNED = "pruned"


class StudyState(enum.StrEnum):
    """The lifecycle of a stored study."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    COMPLETE = "complete"
    FAILED = "failed"


class TrialTask(NamedTuple):
    """One trial to evaluate: its number, parameters, key and the data prefix.

    ``stop`` is the number of bars to use (``None``: all of them); ``step`` is
    the successive-halving rung (0 when pruning is off). A named tuple: one is
    built per trial, by the orchestrator and again by its worker, at a third
    of a frozen dataclass's cost.
    """

    number: int
    params: dict[str, Any]
    key: str
    step: int = 0
    stop: int | None = None


@dataclass(frozen=True, slots=True)
class TrialResult:
    """What a worker reports for one evaluated trial."""

    number: int
    state: TrialState
    metrics: dict[str, float] | None
    objective: float | None
    started: float  # wall clock (epoch seconds)
    duration_s: float
    worker: str
    error: str | None = None
    step: int = 0
    #: The trial's log returns on the study's equal time blocks (float32 bytes), when recorded.
    blocks: bytes | None = None

    def __reduce__(self) -> tuple[Any, ...]:  # fast pickling from workers
        # The state travels as its text: rebuilding an enum member through its class costs a
        # third of unpickling a result, and the orchestrator unpickles every trial.
        return (
            _result,
            (self.number, self.state.value, self.metrics, self.objective, self.started, self.duration_s,
             self.worker, self.error, self.step, self.blocks),
        )


#: ``TrialState(text)`` as a lookup (the enum's call costs more than building the rest of a record).
STATES_BY_VALUE = {state.value: state for state in TrialState}


def _result(
    number: int, state: str, metrics: dict[str, float] | None, objective: float | None, started: float,
    duration_s: float, worker: str, error: str | None, step: int, blocks: bytes | None,
) -> TrialResult:
    """A :class:`TrialResult` as unpickled (``state`` by its text)."""
    return TrialResult(number, STATES_BY_VALUE[state], metrics, objective, started, duration_s, worker, error, step, blocks)


@dataclass(frozen=True, slots=True)
class TrialPoints:
    """A page of committed trials read after a cursor, as columns: only the complete ones' parameters
    and objectives (no record per row; what the study watch's views need)."""

    rowid: int
    """The last row read (the next cursor; the given one when nothing was read)."""
    read: int
    """Rows read, complete or not (fewer than the limit: the last page)."""
    params: list[dict[str, Any]]
    objectives: list[float]


@dataclass(frozen=True, slots=True)
class CompleteTrials:
    """A study's complete trials as columns, in the order given (stored, or by number): the fields its
    report reads of each, without a record per row."""

    numbers: list[int]
    params: list[dict[str, Any]]
    objectives: list[float | None]
    durations: list[float | None]

    def __len__(self) -> int:
        return len(self.numbers)

    def by_number(self) -> CompleteTrials:
        """The same trials ordered by number."""
        order = sorted(range(len(self.numbers)), key=self.numbers.__getitem__)
        return CompleteTrials(
            [self.numbers[i] for i in order], [self.params[i] for i in order],
            [self.objectives[i] for i in order], [self.durations[i] for i in order],
        )

    @classmethod
    def of(cls, trials: Sequence[TrialRecord]) -> CompleteTrials:
        """The columns of ``trials``, in their order."""
        return cls([t.number for t in trials], [t.params for t in trials],
                   [t.objective for t in trials], [t.duration_s for t in trials])


@dataclass(frozen=True, slots=True)
class TrialRecord:
    """One stored trial (``rowid`` orders trials by the time they were written)."""

    number: int
    key: str
    params: dict[str, Any]
    state: TrialState
    metrics: dict[str, Any] | None
    objective: float | None
    started: float | None
    duration_s: float | None
    worker: str | None
    error: str | None = None
    step: int | None = None
    batch: int = 0
    rowid: int = 0


@dataclass(frozen=True, slots=True)
class StudyRecord:
    """One stored study and its last checkpoint."""

    id: int
    name: str
    spec_toml: str
    spec_hash: str
    created: float
    updated: float
    state: StudyState
    sampler_state: dict[str, Any] | None
    checkpoint_seq: int
    next_number: int
    validation: dict[str, Any] | None = None
    error: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)


def clean_objective(value: object) -> float | None:
    """A finite float, or ``None`` for a missing, NaN or infinite objective."""
    if value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def rank_value(objective: float | None, maximize: bool) -> float:
    """A value where larger is always better (``-inf`` for no objective)."""
    if objective is None:
        return -math.inf
    return objective if maximize else -objective
