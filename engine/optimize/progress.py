"""Progress of a running study as immutable snapshots (the CLI and the console render them).

Throughput is measured over a sliding window of recent completions against
wall time, so it already reflects every worker running in parallel; the ETA
is the remaining trials over that rate (never a sum of trial durations, which
would be off by the number of workers).
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import Any

from engine.load_progress import LoadProgress, LoadProgressBoard

WINDOW_S = 15.0


@dataclass(frozen=True, slots=True)
class StudyProgress:
    """One moment of a study: counts, rate, ETA and the best trial so far."""

    study: str
    state: str
    total: int
    done: int
    complete: int
    failed: int
    pruned: int
    in_flight: int
    elapsed_s: float
    trials_per_s: float
    eta_s: float | None
    best_value: float | None
    best_number: int | None
    best_params: dict[str, Any] = field(default_factory=dict)
    objective: str = "sharpe"
    workers: int = 1
    resumed_from: int = 0  # trials already stored when this run started
    loading: LoadProgress | None = None  # the study's data download while it runs (before the trials)

    @property
    def fraction(self) -> float:
        """Done over total, in [0, 1]."""
        return min(1.0, self.done / self.total) if self.total else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields."""
        return {
            "study": self.study,
            "state": self.state,
            "total": self.total,
            "done": self.done,
            "complete": self.complete,
            "failed": self.failed,
            "pruned": self.pruned,
            "in_flight": self.in_flight,
            "elapsed_s": round(self.elapsed_s, 3),
            "trials_per_s": round(self.trials_per_s, 2),
            "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
            "best_value": self.best_value,
            "best_number": self.best_number,
            "best_params": self.best_params,
            "objective": self.objective,
            "workers": self.workers,
            "resumed_from": self.resumed_from,
        }


def format_duration(seconds: float | None) -> str:
    """``1h02m``, ``3m05s``, ``12.3s`` or ``--``."""
    if seconds is None:
        return "--"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def progress_line(p: StudyProgress) -> str:
    """The plain one-line form (for logs and non-terminal output)."""
    best = "--" if p.best_value is None else f"{p.best_value:.4g} (#{p.best_number})"
    return (
        f"{p.study}: {p.done}/{p.total} trials ({100 * p.fraction:.1f}%), {p.trials_per_s:.1f}/s, "
        f"ETA {format_duration(p.eta_s)}, best {p.objective} {best}, failed {p.failed}, pruned {p.pruned}"
    )


class ProgressTracker:
    """Mutable counters owned by the study; :meth:`snapshot` freezes them."""

    def __init__(self, study: str, total: int, *, objective: str, workers: int, clock: Any = time.monotonic) -> None:
        self.study = study
        self.total = total
        self.objective = objective
        self.workers = workers
        self.state = "created"
        self.complete = 0
        self.failed = 0
        self.pruned = 0
        self.in_flight = 0
        self.resumed_from = 0
        self.best_value: float | None = None
        self.best_number: int | None = None
        self.best_params: dict[str, Any] = {}
        self.loading = LoadProgressBoard()  # the data load's reports (from the loader's threads)
        self._clock = clock
        self._started = clock()
        self._window: collections.deque[tuple[float, int]] = collections.deque()
        self._session_done = 0

    @property
    def done(self) -> int:
        return self.complete + self.failed + self.pruned

    def restart_clock(self) -> None:
        """Start timing now (trials already stored do not count towards the rate)."""
        self._started = self._clock()
        self._window.clear()
        self._session_done = 0
        self.resumed_from = self.done

    def count(self, state: str, n: int = 1) -> None:
        """Count ``n`` finished trials in ``state`` (complete, failed or pruned)."""
        setattr(self, state, getattr(self, state) + n)
        self._session_done += n
        now = self._clock()
        self._window.append((now, self._session_done))
        while len(self._window) > 2 and now - self._window[0][0] > WINDOW_S:
            self._window.popleft()

    def count_many(self, results: Any) -> None:
        """Count a chunk's results (anything with a ``state``) in one step."""
        complete = failed = pruned = 0
        for result in results:
            state = result.state.value
            if state == "complete":
                complete += 1
            elif state == "failed":
                failed += 1
            elif state == "pruned":
                pruned += 1
        self.complete += complete
        self.failed += failed
        self.pruned += pruned
        n = complete + failed + pruned
        if n:
            self._session_done += n
            now = self._clock()
            self._window.append((now, self._session_done))
            while len(self._window) > 2 and now - self._window[0][0] > WINDOW_S:
                self._window.popleft()

    def offer_best(self, value: float, number: int, params: dict[str, Any], maximize: bool) -> None:
        if (
            self.best_value is None
            or (value > self.best_value if maximize else value < self.best_value)
            or (value == self.best_value and self.best_number is not None and number < self.best_number)
        ):
            self.best_value, self.best_number, self.best_params = value, number, dict(params)

    def rate(self) -> float:
        """Trials per second over the recent window (whole session when short)."""
        now = self._clock()
        if not self._window:
            return 0.0
        first_t, first_n = self._window[0]
        last_n = self._window[-1][1]
        span = now - first_t
        if span >= 1.0 and last_n > first_n:
            return (last_n - first_n) / span
        elapsed = now - self._started
        return self._session_done / elapsed if elapsed > 0 else 0.0

    def snapshot(self) -> StudyProgress:
        rate = self.rate()
        remaining = max(0, self.total - self.done)
        eta = remaining / rate if rate > 0 else (0.0 if remaining == 0 else None)
        return StudyProgress(
            study=self.study,
            state=self.state,
            total=self.total,
            done=self.done,
            complete=self.complete,
            failed=self.failed,
            pruned=self.pruned,
            in_flight=self.in_flight,
            elapsed_s=self._clock() - self._started,
            trials_per_s=rate,
            eta_s=eta,
            best_value=self.best_value,
            best_number=self.best_number,
            best_params=dict(self.best_params),
            objective=self.objective,
            workers=self.workers,
            resumed_from=self.resumed_from,
            loading=self.loading.current(),
        )
