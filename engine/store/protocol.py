"""``StudyStore``: the study store's interface, whatever database holds it.

``engine.store.study_sqlite.SqliteStore`` is the embedded implementation; a second
backend (PostgreSQL) offers the same methods. Studies, reports, exports and the
console's watch take a ``StudyStore``, so they work on either; mypy checks that
each implementation satisfies it. Records are the immutable ones of
:mod:`engine.store.records` (a leaf module: plain data, no imports of ours).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np

from engine.store.claims import DriverRecord
from engine.store.records import (
    CompleteTrials,
    StudyRecord,
    StudyState,
    TrialPoints,
    TrialRecord,
    TrialResult,
    TrialState,
    TrialTask,
)
from engine.store.result_batch import ResultBatch

#: An artifact as a worker ships it: ``(dtype, shape, zlib blob)``.
EncodedArtifact = tuple[str, str, bytes]


@runtime_checkable
class StudyStore(Protocol):
    """Studies, their trials (append-only, first write wins), checkpoints and artifacts.

    Writes of trials, artifacts and checkpoints are queued and committed in
    batches; a checkpoint is written with every trial queued before it. Reads
    see committed data only.
    """

    @property
    def path(self) -> str | Path:
        """What messages name the store by (a file, or a URL without its password)."""
        ...

    async def close(self) -> None:
        """Flush queued writes and close the connections."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...

    # -- studies ------------------------------------------------------------

    async def create_study(self, name: str, spec_toml: str) -> StudyRecord:
        """Create study ``name``, or return it if it exists with the same spec text."""
        ...

    async def check_integrity(self) -> None:
        """Refuse a damaged store before anything is written to it."""
        ...

    async def get_study(self, name: str) -> StudyRecord | None: ...

    async def require_study(self, name: str) -> StudyRecord:
        """Like :meth:`get_study`, but a missing study is a one-line ``StoreError``."""
        ...

    async def studies(self) -> list[StudyRecord]: ...

    async def set_study_state(
        self, study_id: int, state: StudyState, error: str | None = None, *, after_failure: bool = False
    ) -> None: ...

    async def save_validation(self, study_id: int, validation: dict[str, Any]) -> None: ...

    async def save_summary(self, study_id: int, summary: dict[str, Any]) -> None: ...

    # -- batched writes -----------------------------------------------------

    async def add_trials(self, study_id: int, trials: Iterable[TrialRecord]) -> None: ...

    async def add_results(self, study_id: int, batch: int, pairs: Iterable[tuple[TrialResult, TrialTask]]) -> None:
        """Queue workers' results with their tasks (the fast path of a running study)."""
        ...

    async def add_batch(self, study_id: int, batch: int, results: ResultBatch, tasks: Sequence[TrialTask]) -> None:
        """Queue a worker's result columns with their tasks (``tasks[i]`` is row ``i``'s): the fast path."""
        ...

    async def add_trial(self, study_id: int, trial: TrialRecord) -> None: ...

    def put_artifacts(
        self, study_id: int, number: int, arrays: dict[str, np.ndarray] | dict[str, EncodedArtifact]
    ) -> None:
        """Queue a trial's artifacts (arrays, or encoded by a worker), replacing any."""
        ...

    def drop_artifacts(self, study_id: int, number: int) -> None: ...

    async def checkpoint(
        self, study_id: int, sampler_state: dict[str, Any], seq: int, next_number: int, *, wait: bool = True
    ) -> None:
        """Write the sampler state with every trial queued so far, in one transaction (``wait``: for it)."""
        ...

    async def flush(self) -> None:
        """Commit everything queued so far and wait for it."""
        ...

    @property
    def queued(self) -> int:
        """Trials queued and not yet committed."""
        ...

    # -- reads --------------------------------------------------------------

    async def trials(
        self, study_id: int, *, states: Iterable[TrialState] | None = None, order: str = "number"
    ) -> list[TrialRecord]: ...

    async def trials_after(self, study_id: int, rowid: int, limit: int = 1000) -> list[TrialRecord]: ...

    async def points_after(self, study_id: int, rowid: int, limit: int = 1000) -> TrialPoints:
        """The page :meth:`trials_after` reads, as columns: complete trials' parameters and objectives."""
        ...

    async def complete_trials(self, study_id: int) -> CompleteTrials:
        """The complete trials, in the order stored, as columns (what a report reads of them)."""
        ...

    async def trial_outcomes(
        self, study_id: int, *, batch: int | None = None
    ) -> dict[str, tuple[TrialState, float | None, int, int]]: ...

    async def best(self, study_id: int, *, maximize: bool, k: int = 1) -> list[TrialRecord]: ...

    async def counts(self, study_id: int) -> dict[TrialState, int]: ...

    async def timings(self, study_id: int) -> list[tuple[TrialState, float | None, str | None, int | None]]: ...

    async def metric_values(self, study_id: int, metric: str) -> list[float | None]: ...

    async def drivers(self, study_id: int) -> list[DriverRecord]:
        """The drivers that shared the study (host, pid, trials closed, rate); empty on SQLite."""
        ...

    async def trial_blocks(self, study_id: int) -> tuple[np.ndarray, np.ndarray]:
        """``(numbers, figures)``: trial numbers and each one's per-block log returns (CSCV)."""
        ...

    async def artifact_numbers(self, study_id: int) -> list[int]: ...

    async def artifacts(self, study_id: int, number: int) -> dict[str, np.ndarray]: ...
