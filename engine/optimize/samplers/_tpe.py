"""The TPE sampler: Optuna's ``TPESampler`` behind the ask/tell protocol.

Needs the ``optuna`` extra (``pip install genesis-console[optuna]``); without
it, building the sampler raises a ``ConfigError``. Optuna runs in memory with
``multivariate=True``; its log lines are silenced.

Determinism: before each :meth:`ask` call the Optuna sampler is re-created
with a seed derived from the study seed and the number of Optuna trials so
far, so a batch depends only on the seed and the history told before it.
The state is that history (every Optuna trial in order: raw parameters,
state, value; a trial asked and not yet told is ``running``); restoring rebuilds the in-memory Optuna study from it with
``add_trial`` and continues exactly, provided the executor asks fixed-size
batches and tells each batch in ask order before asking the next.

Points Optuna proposes that break a constraint are told to it with the worst
possible value (so it learns to avoid them) and are never handed out; points
already produced are told the value they got (or wait for it) and are not
handed out again. Every 10 rejected proposals in a row, a random new feasible
point (seeded from the history) is queued for Optuna, so a nearly used-up
finite space still progresses; after ``MAX_REJECTIONS`` in a row the sampler
is exhausted. Failed and pruned trials are told to Optuna as failed.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from typing import Any

import numpy as np

from engine.errors import ConfigError
from engine.optimize.samplers._base import MAX_REJECTIONS, Sampler, decode_float, encode_float
from engine.optimize.space import ChoiceDim, FloatDim, IntDim, Space

#: After this many rejected proposals in a row (a saturated finite space), a
#: random new point is queued for Optuna to evaluate next.
_NUDGE = 10
_NUDGE_TRIES = 100


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError:  # pragma: no cover - optuna is part of the test environment
        raise ConfigError(
            "search.sampler: \"tpe\" needs optuna: pip install 'genesis-console[optuna]'"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


class TPESampler(Sampler):
    """Tree-structured Parzen Estimator (Optuna) with exact resume."""

    name = "tpe"

    def __init__(
        self, space: Space, *, seed: int = 0, direction: str = "maximize", startup_trials: int = 10
    ) -> None:
        super().__init__(space, seed=seed, direction=direction)
        self._optuna = _import_optuna()
        self.startup_trials = startup_trials
        self._distributions, self._constants = self._build_distributions()
        self._penalty = -math.inf if direction == "maximize" else math.inf
        self._limit = space.feasible_grid_size() if space.discrete else None
        self._reset()

    def _reset(self) -> None:
        self._study = self._optuna.create_study(direction=self.direction)
        self._pending: dict[str, list[int]] = {}  # key -> Optuna trial numbers awaiting its value
        self._told: dict[str, float | None] = {}
        self._seen: set[str] = set()
        self._streak = 0

    def _build_distributions(self) -> tuple[dict[str, Any], dict[str, Any]]:
        distributions = self._optuna.distributions
        result: dict[str, Any] = {}
        constants: dict[str, Any] = {}
        for dim in self.space.dims:
            if dim.discrete and dim.size == 1:
                constants[dim.name] = dim.grid_value(0)
            elif isinstance(dim, IntDim):
                result[dim.name] = distributions.IntDistribution(dim.low, dim.top, step=dim.step, log=dim.log)
            elif isinstance(dim, FloatDim) and dim.step is not None:
                result[dim.name] = distributions.FloatDistribution(dim.low, dim.bounds[1], step=dim.step)
            elif isinstance(dim, FloatDim):
                result[dim.name] = distributions.FloatDistribution(dim.low, dim.high, log=dim.log)
            else:
                assert isinstance(dim, ChoiceDim)
                result[dim.name] = distributions.CategoricalDistribution(list(dim.values))
        return result, constants

    def _sampler(self) -> Any:
        digest = hashlib.blake2b(f"{self.seed}:{len(self._study.trials)}".encode(), digest_size=4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self._optuna.samplers.TPESampler(
                seed=int.from_bytes(digest.digest(), "little"),
                n_startup_trials=self.startup_trials,
                multivariate=True,
            )

    def _point(self, raw: dict[str, Any]) -> dict[str, Any]:
        searched = dict(self._constants)
        for dim in self.space.dims:
            if dim.name in raw:
                value = raw[dim.name]
                if isinstance(dim, FloatDim) and dim.step is not None:  # snap onto the lattice
                    value = dim.grid_value(min(max(round((value - dim.low) / dim.step), 0), dim.size - 1))
                searched[dim.name] = dim.normalise(value)
        return self.space.complete(searched)

    # ------------------------------------------------------------------ protocol

    def _ask(self, n: int) -> list[dict[str, Any]]:
        self._study.sampler = self._sampler()
        points: list[dict[str, Any]] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            while len(points) < n and not self.exhausted:
                trial = self._study.ask(self._distributions)
                point = self._point(trial.params)
                key = self.space.trial_key(point)
                if not self.space.is_feasible(point):
                    self._study.tell(trial.number, self._penalty)
                    self._reject()
                elif key in self._seen:
                    if key in self._told:
                        self._finish(trial.number, self._told[key])
                    else:
                        self._pending[key].append(trial.number)
                    self._reject()
                else:
                    self._seen.add(key)
                    self._pending[key] = [trial.number]
                    self._streak = 0
                    points.append(point)
        return points

    def _reject(self) -> None:
        """Count a rejected proposal; every ``_NUDGE`` in a row, queue a random new point."""
        self._streak += 1
        if self._streak % _NUDGE:
            return
        rng = np.random.default_rng([self.seed, len(self._study.trials)])
        for _ in range(_NUDGE_TRIES):
            point = self.space.sample(rng.random(len(self.space.dims)))
            if self.space.is_feasible(point) and self.space.trial_key(point) not in self._seen:
                self._study.enqueue_trial({name: point[name] for name in self._distributions})
                return

    def _finish(self, number: int, value: float | None) -> None:
        if value is None or math.isnan(value):
            self._study.tell(number, state=self._optuna.trial.TrialState.FAIL)
        else:
            self._study.tell(number, float(value))

    def tell(self, params: dict[str, Any], value: float | None) -> None:
        key = self.space.trial_key(params)
        numbers = self._pending.pop(key, None)
        if numbers is None:
            return
        value = None if value is None or math.isnan(float(value)) else float(value)
        self._told[key] = value
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for number in numbers:
                self._finish(number, value)

    @property
    def exhausted(self) -> bool:
        if self._limit is not None and len(self._seen) >= self._limit:
            return True
        return self._streak >= MAX_REJECTIONS

    # ------------------------------------------------------------------ state

    def _state(self) -> dict[str, Any]:
        states = self._optuna.trial.TrialState
        complete, fail, running = states.COMPLETE, states.FAIL, states.RUNNING
        history = []
        # Running trials (asked, not told) are kept too: a study several drivers share restores the
        # sampler between an ask and its tell. A single driver checkpoints after telling, so has none.
        for trial in self._study.get_trials(deepcopy=False, states=(complete, fail, running)):
            status = "complete" if trial.state == complete else "running" if trial.state == running else "fail"
            history.append([trial.params, status, encode_float(trial.value) if trial.state == complete else None])
        return {"history": history, "streak": self._streak}

    def _restore(self, state: dict[str, Any]) -> None:
        self._reset()
        optuna = self._optuna
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            states = optuna.trial.TrialState
            for raw, status, value in state["history"]:
                complete = status == "complete"
                running = status == "running"
                self._study.add_trial(
                    optuna.trial.create_trial(
                        params=raw,
                        distributions={k: self._distributions[k] for k in raw},
                        value=decode_float(value) if complete else None,
                        state=states.COMPLETE if complete else states.RUNNING if running else states.FAIL,
                    )
                )
                point = self._point(raw)
                if not self.space.is_feasible(point):
                    continue
                key = self.space.trial_key(point)
                self._seen.add(key)
                if running:
                    self._pending.setdefault(key, []).append(len(self._study.trials) - 1)
                else:
                    self._told[key] = decode_float(value) if complete else None
        self._streak = int(state["streak"])
