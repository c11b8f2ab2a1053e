"""``ResultBatch``: a chunk of trial results as columns, from a worker through the pipe into the store.

A million-trial study cannot afford a Python object per trial on the
orchestrator: each costs microseconds to unpickle, to walk and to encode. A
worker therefore ships a chunk's results as a handful of numpy arrays (one
pickle), the orchestrator reads what it needs from the columns (best value,
failure streaks, counts) and the store encodes the rows straight from them.
:meth:`ResultBatch.to_results` builds :class:`~engine.store.records.TrialResult`
objects only for the readers that want them (successive halving, artifacts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.store.records import TrialResult, TrialState

#: A state's code in :attr:`ResultBatch.states` (the index in this tuple).
STATES: tuple[TrialState, ...] = (TrialState.COMPLETE, TrialState.FAILED, TrialState.PRUNED, TrialState.RUNNING)
STATE_CODE: dict[TrialState, int] = {state: code for code, state in enumerate(STATES)}
COMPLETE, FAILED, PRUNED = 0, 1, 2


@dataclass(frozen=True, slots=True, eq=False)
class ResultBatch:
    """The results of (part of) a chunk, one row per trial, in the order they were evaluated.

    ``metrics`` holds one column per name of ``metric_names`` (NaN where a value
    is NaN or missing); ``has_metrics`` says which rows have metrics at all
    (a failed trial usually has none). ``objectives`` is NaN for "no objective".
    Names in ``int_metrics`` are integers (a trade count) and come back as ``int``.
    ``errors`` holds the error line of the rows that have one (row -> text), and
    ``blocks`` the per-block log returns (float32 rows) when the study records them.
    """

    numbers: np.ndarray  # int64
    states: np.ndarray  # uint8, codes of STATES
    objectives: np.ndarray  # float64
    metric_names: tuple[str, ...]
    metrics: np.ndarray  # float64, (rows, len(metric_names))
    has_metrics: np.ndarray  # bool
    started: np.ndarray  # float64, wall clock (epoch seconds)
    durations: np.ndarray  # float64
    steps: np.ndarray  # int32
    worker: str
    int_metrics: frozenset[str] = frozenset()
    errors: dict[int, str] = field(default_factory=dict)
    blocks: np.ndarray | None = None  # float32 (rows, blocks)
    has_blocks: np.ndarray | None = None  # bool: the rows of ``blocks`` that were recorded (None: all)
    #: Rows whose metrics lack some of ``metric_names`` (a chunk mixing metric sets): row -> names present.
    partial: dict[int, tuple[str, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.numbers.shape[0])

    @property
    def busy_s(self) -> float:
        """Summed trial time."""
        return float(self.durations.sum())

    # -- building -----------------------------------------------------------

    @classmethod
    def empty(cls, worker: str = "") -> ResultBatch:
        return cls.from_results([], worker=worker)

    @classmethod
    def from_columns(
        cls,
        numbers: Sequence[int] | np.ndarray,
        steps: Sequence[int] | np.ndarray,
        metric_names: tuple[str, ...],
        metrics: np.ndarray,
        objective: str,
        *,
        started: float,
        duration_s: float,
        worker: str,
        int_metrics: frozenset[str] = frozenset(),
        blocks: np.ndarray | None = None,
    ) -> ResultBatch:
        """Complete trials from a kernel's metric table (one row per trial), all started together.

        A row whose objective is not among ``metric_names`` cannot be ranked: every
        row then fails, as a single trial would."""
        n = len(numbers)
        table = np.ascontiguousarray(metrics, dtype=np.float64).reshape(n, len(metric_names))
        states = np.zeros(n, dtype=np.uint8)
        errors: dict[int, str] = {}
        if objective in metric_names:
            objectives = table[:, metric_names.index(objective)].copy()
            objectives[~np.isfinite(objectives)] = np.nan
        else:
            objectives = np.full(n, np.nan)
            states[:] = FAILED
            line = f"objective {objective!r} is not a metric of this backtest"
            errors = dict.fromkeys(range(n), line)
        return cls(
            numbers=np.asarray(numbers, dtype=np.int64),
            states=states,
            objectives=objectives,
            metric_names=metric_names,
            metrics=table,
            has_metrics=np.ones(n, dtype=bool),
            started=np.full(n, started),
            durations=np.full(n, duration_s),
            steps=np.asarray(steps, dtype=np.int32),
            worker=worker,
            int_metrics=int_metrics,
            errors=errors,
            blocks=None if blocks is None else np.asarray(blocks, dtype="<f4"),
        )

    @classmethod
    def from_results(cls, results: Sequence[TrialResult], worker: str | None = None) -> ResultBatch:
        """Columns of ``results`` (any states, any metrics: the general, slower path)."""
        n = len(results)
        names: dict[str, None] = {}
        ints: set[str] = set()
        floats: set[str] = set()
        for result in results:
            if result.metrics:
                for name, value in result.metrics.items():
                    names[name] = None
                    (ints if type(value) is int else floats).add(name)
        metric_names = tuple(names)
        table = np.full((n, len(metric_names)), np.nan)
        has = np.zeros(n, dtype=bool)
        partial: dict[int, tuple[str, ...]] = {}
        column = {name: j for j, name in enumerate(metric_names)}
        widths = {len(r.blocks) for r in results if r.blocks is not None}
        blocks = np.full((n, widths.pop() // 4), np.nan, dtype="<f4") if len(widths) == 1 else None
        has_blocks = np.zeros(n, dtype=bool) if blocks is not None else None
        errors: dict[int, str] = {}
        for row, result in enumerate(results):
            if result.metrics is not None:
                has[row] = True
                for name, value in result.metrics.items():
                    table[row, column[name]] = np.nan if value is None else value
                if len(result.metrics) != len(metric_names):
                    partial[row] = tuple(result.metrics)
            if result.error is not None:
                errors[row] = result.error
            if blocks is not None and has_blocks is not None and result.blocks is not None:
                blocks[row] = np.frombuffer(result.blocks, dtype="<f4")
                has_blocks[row] = True
        if widths and blocks is None:  # rows of different widths: not expected in one study
            raise ValueError("results with per-block figures of different lengths in one batch")
        return cls(
            numbers=np.fromiter((r.number for r in results), dtype=np.int64, count=n),
            states=np.fromiter((STATE_CODE[r.state] for r in results), dtype=np.uint8, count=n),
            objectives=np.fromiter(
                (math.nan if r.objective is None else r.objective for r in results), dtype=np.float64, count=n
            ),
            metric_names=metric_names,
            metrics=table,
            has_metrics=has,
            started=np.fromiter((r.started for r in results), dtype=np.float64, count=n),
            durations=np.fromiter((r.duration_s for r in results), dtype=np.float64, count=n),
            steps=np.fromiter((r.step for r in results), dtype=np.int32, count=n),
            worker=results[0].worker if worker is None and results else (worker or ""),
            int_metrics=frozenset(ints - floats),
            errors=errors,
            blocks=blocks,
            has_blocks=has_blocks,
            partial=partial,
        )

    @staticmethod
    def concat(batches: Sequence[ResultBatch]) -> ResultBatch:
        """One batch of several (through their results when their layouts differ)."""
        batches = [b for b in batches if len(b)]
        if not batches:
            return ResultBatch.empty()
        if len(batches) == 1:
            return batches[0]
        first = batches[0]
        same = all(
            b.metric_names == first.metric_names and b.int_metrics == first.int_metrics and b.worker == first.worker
            and not b.partial and b.has_blocks is None and (b.blocks is None) == (first.blocks is None)
            and (b.blocks is None or first.blocks is None or b.blocks.shape[1] == first.blocks.shape[1])
            for b in batches
        )
        if not same:
            return ResultBatch.from_results([r for b in batches for r in b.to_results()])
        errors: dict[int, str] = {}
        offset = 0
        for b in batches:
            errors.update((offset + row, text) for row, text in b.errors.items())
            offset += len(b)
        join = np.concatenate
        return ResultBatch(
            numbers=join([b.numbers for b in batches]),
            states=join([b.states for b in batches]),
            objectives=join([b.objectives for b in batches]),
            metric_names=first.metric_names,
            metrics=join([b.metrics for b in batches]),
            has_metrics=join([b.has_metrics for b in batches]),
            started=join([b.started for b in batches]),
            durations=join([b.durations for b in batches]),
            steps=join([b.steps for b in batches]),
            worker=first.worker,
            int_metrics=first.int_metrics,
            errors=errors,
            blocks=None if first.blocks is None else join([b.blocks for b in batches if b.blocks is not None]),
        )

    # -- reading ------------------------------------------------------------

    def metrics_dict(self, row: int) -> dict[str, Any] | None:
        """Row ``row``'s metrics as a worker would have reported them (``None`` when it has none)."""
        if not self.has_metrics[row]:
            return None
        values = self.metrics[row].tolist()
        out = dict(zip(self.metric_names, values, strict=True))
        for name in self.int_metrics:
            value = out[name]
            if value == value:
                out[name] = int(value)
        present = self.partial.get(row)
        if present is not None:
            out = {name: out[name] for name in present}
        return out

    def result(self, row: int) -> TrialResult:
        """Row ``row`` as a :class:`TrialResult`."""
        objective = float(self.objectives[row])
        blocks = None
        if self.blocks is not None and (self.has_blocks is None or self.has_blocks[row]):
            blocks = self.blocks[row].tobytes()
        return TrialResult(
            int(self.numbers[row]),
            STATES[int(self.states[row])],
            self.metrics_dict(row),
            None if objective != objective else objective,
            float(self.started[row]),
            float(self.durations[row]),
            self.worker,
            self.errors.get(row),
            int(self.steps[row]),
            blocks,
        )

    def to_results(self) -> list[TrialResult]:
        """Every row as a :class:`TrialResult` (for readers that want objects)."""
        return [self.result(row) for row in range(len(self))]

    def count(self, state: TrialState) -> int:
        """Rows in ``state``."""
        return int(np.count_nonzero(self.states == STATE_CODE[state]))
