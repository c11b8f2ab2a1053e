"""Validation against overfitting: hold-out, walk-forward and the deflated Sharpe ratio.

A study searches its parameters on the *in-sample* bars (all of them, or the
first ``1 - out_of_sample`` when a hold-out is asked for). When it ends,
:func:`validate` re-runs its best trials on data they were not chosen on:

* **Hold-out**: the ``top_k`` best trials run on the last ``out_of_sample``
  fraction of the bars; the report puts in-sample and out-of-sample metrics
  side by side. The hold-out slice is backtested on its own, so indicators
  warm up again at its start, as a strategy deployed on that day would.
* **Walk-forward**: ``walk_forward_folds`` folds over all the bars, each a
  train range followed by a test range (:func:`walk_forward_folds`). On each
  fold the best of the candidate trials *on that fold's train range* is
  re-selected and evaluated on its test range. The candidates are the study's
  best ``walk_forward_candidates`` trials (0: every trial handed in); since
  they were ranked on the in-sample data, folds whose test range lies inside it
  measure the stability of the choice, while the folds in the hold-out are
  truly out of sample.
* **Deflated Sharpe ratio** (Bailey & López de Prado, 2014) of the best trial,
  always: the probability that its true Sharpe ratio is above zero once the
  number of trials tried, their dispersion and the non-normality of the
  returns are accounted for (:func:`deflated_sharpe`).

Every result is an immutable record; :meth:`ValidationReport.as_dict` gives
JSON-ready builtins (non-finite numbers become ``None``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from engine.data.timeframes import periods_per_year
from engine.errors import DataError
from engine.optimize.space import trial_key

if TYPE_CHECKING:
    from engine.data.bars import Bars
    from engine.data.basket import Basket

    #: A study's market data: one symbol's bars or a basket (both slice along the timeline).
    Market = Bars | Basket
    from engine.optimize.spec import StudySpec, ValidationSpec

EULER_GAMMA = 0.5772156649015329
MIN_SEGMENT_BARS = 2

#: ``runner(bars, params, want_returns) -> (metrics, per-bar returns or None)``
Runner = Callable[["Market", Mapping[str, Any], bool], tuple[dict[str, float], np.ndarray | None]]


# --------------------------------------------------------------------------- ranges


class IndexRange(msgspec.Struct, frozen=True, array_like=True):
    """Bars ``[start, stop)``."""

    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


class Fold(msgspec.Struct, frozen=True):
    """One walk-forward fold: train on ``train``, then test on the bars right after it."""

    index: int
    train: IndexRange
    test: IndexRange


def holdout_ranges(n: int, fraction: float) -> tuple[IndexRange, IndexRange]:
    """``(in-sample, out-of-sample)`` ranges: the last ``fraction`` of ``n`` bars is held out."""
    if not 0.0 < fraction < 1.0:
        raise DataError(f"validation.out_of_sample: expected a fraction in (0, 1), got {fraction!r}")
    held = math.floor(n * fraction)
    cut = n - held
    if held < MIN_SEGMENT_BARS or cut < MIN_SEGMENT_BARS:
        raise DataError(
            f"validation.out_of_sample: {fraction} of {n} bars leaves {cut} in-sample and {held}"
            f" held-out bars; each needs at least {MIN_SEGMENT_BARS}"
        )
    return IndexRange(0, cut), IndexRange(cut, n)


def in_sample(bars: Market, validation: ValidationSpec | None) -> Market:
    """The bars a study searches on (all of them without a hold-out).

    Called when a study starts, it also checks that the walk-forward folds fit
    the data, so a validation that cannot run fails before any trial does.
    """
    if validation is None:
        return bars
    if validation.walk_forward_folds > 0:
        walk_forward_folds(
            len(bars), validation.walk_forward_folds,
            mode=validation.walk_forward_mode, train_ratio=validation.walk_forward_train_ratio,
        )
    fraction = validation.out_of_sample
    if not fraction:
        return bars
    inside, _ = holdout_ranges(len(bars), fraction)
    return bars.slice(inside.start, inside.stop)


def split_holdout(bars: Market, fraction: float) -> tuple[Market, Market]:
    """``(in-sample bars, held-out bars)``."""
    inside, held = holdout_ranges(len(bars), fraction)
    return bars.slice(inside.start, inside.stop), bars.slice(held.start, held.stop)


def walk_forward_folds(
    n: int, folds: int, *, mode: str = "rolling", train_ratio: float = 3.0
) -> tuple[Fold, ...]:
    """``folds`` train/test folds over ``n`` bars, the last test range ending at the last bar.

    Each test range has ``t = floor(n / (folds + train_ratio))`` bars and they
    tile the end of the data; the first train range is everything before the
    first test range (``n - folds * t`` bars, about ``train_ratio * t``).
    ``rolling``: every train range has that length and slides with its test
    range. ``anchored``: every train range starts at bar 0 and grows.
    """
    if folds < 1:
        raise DataError(f"validation.walk_forward_folds: expected at least 1 fold, got {folds}")
    if mode not in ("rolling", "anchored"):
        raise DataError(f"validation.walk_forward_mode: expected rolling or anchored, got {mode!r}")
    if not train_ratio > 0:
        raise DataError(f"validation.walk_forward_train_ratio: expected a positive number, got {train_ratio!r}")
    test = math.floor(n / (folds + train_ratio))
    first = n - folds * test
    if test < MIN_SEGMENT_BARS or first < MIN_SEGMENT_BARS:
        raise DataError(
            f"validation.walk_forward_folds: {folds} folds of {n} bars leave {test} bars per test range and"
            f" {first} for the first train range; each needs at least {MIN_SEGMENT_BARS}"
        )
    result = []
    for i in range(folds):
        start = first + i * test
        train_start = 0 if mode == "anchored" else start - first
        result.append(Fold(i, IndexRange(train_start, start), IndexRange(start, start + test)))
    return tuple(result)


# --------------------------------------------------------------------------- deflated Sharpe


def normal_cdf(x: float) -> float:
    """Standard normal CDF through ``math.erf``."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def expected_max_sharpe(n_trials: int, variance: float) -> float:
    """Expected maximum of ``n_trials`` Sharpe ratios whose true value is 0 (``SR_0``).

    ``sqrt(V) * ((1 - g) * Z(1 - 1/N) + g * Z(1 - 1/(N e)))`` with ``g`` the
    Euler-Mascheroni constant and ``Z`` the standard normal quantile. One trial
    (or no dispersion) gives 0.
    """
    if n_trials <= 1 or not variance > 0:
        return 0.0
    quantile = NormalDist().inv_cdf
    return math.sqrt(variance) * (
        (1.0 - EULER_GAMMA) * quantile(1.0 - 1.0 / n_trials)
        + EULER_GAMMA * quantile(1.0 - 1.0 / (n_trials * math.e))
    )


class DeflatedSharpe(msgspec.Struct, frozen=True):
    """The deflated Sharpe ratio of the best trial and the inputs it came from.

    Sharpe ratios are per period (per bar), not annualised; ``sharpe_annualised``
    is there for reading. ``dsr`` is a probability in [0, 1]: above 0.95, the
    best trial's Sharpe ratio is unlikely to be an artefact of the search.
    """

    dsr: float
    sharpe: float
    sharpe_annualised: float
    expected_max_sharpe: float
    n_trials: int
    sharpe_variance: float
    n_returns: int
    skewness: float
    kurtosis: float
    variance_source: str = "trials"  # "trials": every trial; "candidates": the re-run best only


def deflated_sharpe(
    sharpe: float,
    *,
    n_trials: int,
    sharpe_variance: float,
    n_returns: int,
    skewness: float,
    kurtosis: float,
) -> float:
    """DSR = Φ((SR - SR_0) sqrt(T - 1) / sqrt(1 - γ3 SR + (γ4 - 1)/4 SR²)).

    ``sharpe`` per period, ``kurtosis`` not in excess (3 for a normal). NaN when
    fewer than two returns or when the variance term is not positive.
    """
    if n_returns < 2 or not math.isfinite(sharpe):
        return math.nan
    sr0 = expected_max_sharpe(n_trials, sharpe_variance)
    denominator = 1.0 - skewness * sharpe + (kurtosis - 1.0) / 4.0 * sharpe * sharpe
    if not denominator > 0:
        return math.nan
    return normal_cdf((sharpe - sr0) * math.sqrt(n_returns - 1) / math.sqrt(denominator))


def return_moments(returns: np.ndarray) -> tuple[float, float, float]:
    """``(per-period Sharpe, skewness, kurtosis)`` of a return series.

    The Sharpe ratio is ``mean / std`` with the sample std (ddof 1), as the
    backtest's ``sharpe`` metric before annualisation; skewness and kurtosis
    are the standardised third and fourth central moments (kurtosis 3 for a
    normal distribution).
    """
    r = np.asarray(returns, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.shape[0] < 2:
        return math.nan, math.nan, math.nan
    mean = float(r.mean())
    centred = r - mean
    variance = float(np.mean(centred**2))
    if not variance > 0:
        return math.nan, 0.0, 3.0
    skewness = float(np.mean(centred**3)) / variance**1.5
    kurtosis = float(np.mean(centred**4)) / variance**2
    return mean / float(r.std(ddof=1)), skewness, kurtosis


def deflated_sharpe_report(
    returns: np.ndarray,
    *,
    n_trials: int,
    trial_sharpes: Sequence[float],
    timeframe: str,
    variance_source: str = "trials",
) -> DeflatedSharpe:
    """The :class:`DeflatedSharpe` of the best trial's per-bar ``returns``.

    ``trial_sharpes`` are the per-period Sharpe ratios of the trials tried
    (failed ones left out); their sample variance is ``V[SR]``.
    """
    sharpe, skewness, kurtosis = return_moments(returns)
    values = np.asarray([s for s in trial_sharpes if s is not None and math.isfinite(s)], dtype=np.float64)
    variance = float(np.var(values, ddof=1)) if values.shape[0] >= 2 else 0.0
    n_returns = int(np.isfinite(np.asarray(returns, dtype=np.float64)).sum())
    return DeflatedSharpe(
        dsr=deflated_sharpe(
            sharpe, n_trials=n_trials, sharpe_variance=variance, n_returns=n_returns,
            skewness=skewness, kurtosis=kurtosis,
        ),
        sharpe=sharpe,
        sharpe_annualised=sharpe * math.sqrt(periods_per_year(timeframe)),
        expected_max_sharpe=expected_max_sharpe(n_trials, variance),
        n_trials=n_trials,
        sharpe_variance=variance,
        n_returns=n_returns,
        skewness=skewness,
        kurtosis=kurtosis,
        variance_source=variance_source,
    )


# --------------------------------------------------------------------------- the report


class TrialCheck(msgspec.Struct, frozen=True):
    """One of the best trials, in sample and out of sample."""

    rank: int
    key: str
    params: dict[str, Any]
    objective_in: float | None
    objective_out: float | None
    in_sample: dict[str, float]
    out_of_sample: dict[str, float]
    error: str | None = None


class HoldoutReport(msgspec.Struct, frozen=True):
    in_sample: IndexRange
    out_of_sample: IndexRange
    trials: tuple[TrialCheck, ...]
    mean_in: float | None
    mean_out: float | None
    #: ``mean_out / mean_in`` when ``mean_in`` is positive (a ratio of negatives would mislead).
    retention: float | None


class FoldReport(msgspec.Struct, frozen=True):
    index: int
    train: IndexRange
    test: IndexRange
    key: str | None
    params: dict[str, Any] | None
    train_objective: float | None
    test_objective: float | None
    test_metrics: dict[str, float]
    candidates: int


class WalkForwardReport(msgspec.Struct, frozen=True):
    mode: str
    folds: tuple[FoldReport, ...]
    mean_train_objective: float | None
    mean_test_objective: float | None
    #: Mean test objective over mean train objective when the latter is positive
    #: (walk-forward efficiency).
    efficiency: float | None
    #: Folds whose re-selected trial is the study's overall best.
    best_chosen: int


class ValidationReport(msgspec.Struct, frozen=True):
    objective: str
    direction: str
    holdout: HoldoutReport | None
    walk_forward: WalkForwardReport | None
    deflated_sharpe: DeflatedSharpe | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready builtins; NaN and infinities become ``None``."""
        return _finite(msgspec.to_builtins(self))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


# --------------------------------------------------------------------------- running


def backtest_runner(spec: StudySpec) -> Runner:
    """A :data:`Runner` through ``engine.backtest.run`` with the study's strategy and options.

    One bounded indicator cache serves every run, so candidates that share a
    window on the same slice compute its indicator once.
    """
    from engine import backtest

    cache = backtest.IndicatorCache()
    strategy = backtest.resolve_strategy(spec.strategy.name, getattr(spec, "source", None))

    def run(bars: Market, params: Mapping[str, Any], want_returns: bool) -> tuple[dict[str, float], np.ndarray | None]:
        from engine.data.basket import Basket

        strategy_params, options = spec.split(params)
        if isinstance(bars, Basket):  # a basket study validates the portfolio (slices of the timeline)
            portfolio = backtest.run_portfolio(bars, strategy, strategy_params, options=options, equity=want_returns)
            returns = None
            if want_returns:
                returns = equity_returns(np.asarray(portfolio.equity, dtype=np.float64), options.cash)
            return _as_metrics(portfolio.metrics), returns
        result = backtest.run(
            bars, strategy, strategy_params, options=options, equity=want_returns, cache=cache
        )
        metrics = _as_metrics(result.metrics)
        returns = None
        if want_returns:
            returns = equity_returns(np.asarray(result.equity, dtype=np.float64), result.options.cash)
        return metrics, returns

    return run


def stored_first_runner(
    spec: StudySpec, params: Mapping[str, Any], metrics: Mapping[str, Any], equity: np.ndarray,
    span: tuple[int, int, int],
) -> Runner:
    """A :data:`Runner` that answers the run of ``params`` on the bars ``span`` names
    (``(length, first ts, last ts)``: the bars the study searched) from that trial's stored
    ``metrics`` and equity curve, and builds :func:`backtest_runner` only for any other run.

    A worker ran that very backtest (its artifacts), so the numbers are the ones a re-run
    gives; the deflated Sharpe of a study without re-runs then needs no kernel in this process.
    """
    stored = {k: math.nan if v is None else v for k, v in metrics.items()}  # JSON keeps NaN as null
    fallback: Runner | None = None

    def run(bars: Market, asked: Mapping[str, Any], want_returns: bool) -> tuple[dict[str, float], np.ndarray | None]:
        nonlocal fallback
        if dict(asked) == dict(params) and len(bars) == span[0] and len(bars) and (
            int(bars.ts[0]), int(bars.ts[-1])
        ) == span[1:]:
            returns = equity_returns(np.asarray(equity, dtype=np.float64), spec.split(asked)[1].cash)
            return dict(stored), returns if want_returns else None
        if fallback is None:
            fallback = backtest_runner(spec)
        return fallback(bars, asked, want_returns)

    return run


def equity_returns(equity: np.ndarray, cash: float) -> np.ndarray:
    """Per-bar returns of an equity curve, the first against the starting cash (as the metrics do)."""
    previous = np.concatenate(([cash], equity[:-1]))
    return equity / previous - 1.0


def _as_metrics(metrics: Any) -> dict[str, float]:
    items = metrics.items() if isinstance(metrics, Mapping) else metrics.as_dict().items()
    return {
        str(k): int(v) if isinstance(v, (int, np.integer)) else float(v)
        for k, v in items
        if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
    }


def _objective(metrics: Mapping[str, float], name: str) -> float | None:
    value = metrics.get(name)
    return None if value is None or math.isnan(value) else float(value)


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return sum(kept) / len(kept) if kept else None


def _ratio(top: float | None, bottom: float | None) -> float | None:
    if top is None or bottom is None or not bottom > 0:
        return None
    return top / bottom


def _safe_run(
    runner: Runner, bars: Market, params: Mapping[str, Any], want_returns: bool
) -> tuple[dict[str, float], np.ndarray | None, str | None]:
    try:
        metrics, returns = runner(bars, params, want_returns)
    except Exception as error:  # a candidate that fails is reported, the rest go on
        return {}, None, f"{type(error).__name__}: {' '.join(str(error).split())}"[:300]
    return metrics, returns, None


def validate(
    spec: StudySpec,
    bars: Market,
    candidates: Sequence[Mapping[str, Any]],
    *,
    n_trials: int,
    trial_sharpes: Sequence[float] | None = None,
    runner: Runner | None = None,
) -> ValidationReport:
    """Re-run the best trials on data they were not chosen on.

    ``bars`` are all the study's bars (hold-out included); ``candidates`` the
    parameters of the best trials, best first (at least ``top_k``, and
    ``walk_forward_candidates`` for walk-forward); ``n_trials`` the number of
    trials actually run; ``trial_sharpes`` the annualised ``sharpe`` metric of
    every completed trial (for the deflated Sharpe's variance; without it the
    candidates' in-sample Sharpe ratios stand in, which understates the
    dispersion). ``runner`` defaults to :func:`backtest_runner`.
    """
    run = runner or backtest_runner(spec)
    settings = spec.validation
    objective = spec.search.objective
    searched = in_sample(bars, settings)

    holdout = None
    rerun_sharpes: list[float] = []
    best_returns: np.ndarray | None = None
    if settings.out_of_sample > 0:
        inside, held = holdout_ranges(len(bars), settings.out_of_sample)
        outside = bars.slice(held.start, held.stop)
        checks = []
        for rank, params in enumerate(candidates[: settings.top_k]):
            metrics_in, returns, error = _safe_run(run, searched, params, rank == 0)
            metrics_out, _, error_out = _safe_run(run, outside, params, False)
            if rank == 0:
                best_returns = returns
            if "sharpe" in metrics_in:
                rerun_sharpes.append(metrics_in["sharpe"])
            checks.append(TrialCheck(
                rank=rank + 1,
                key=trial_key(params),
                params=dict(params),
                objective_in=_objective(metrics_in, objective),
                objective_out=_objective(metrics_out, objective),
                in_sample=metrics_in,
                out_of_sample=metrics_out,
                error=error or error_out,
            ))
        holdout = HoldoutReport(
            in_sample=inside,
            out_of_sample=held,
            trials=tuple(checks),
            mean_in=_mean([c.objective_in for c in checks]),
            mean_out=_mean([c.objective_out for c in checks]),
            retention=_ratio(_mean([c.objective_out for c in checks]), _mean([c.objective_in for c in checks])),
        )

    walk_forward = None
    if settings.walk_forward_folds > 0 and candidates:
        walk_forward = _walk_forward(spec, bars, candidates, run)

    deflated = None
    if candidates:
        if best_returns is None:
            metrics_best, best_returns, _ = _safe_run(run, searched, candidates[0], True)
            if holdout is None and "sharpe" in metrics_best:
                rerun_sharpes.append(metrics_best["sharpe"])
        if trial_sharpes is None and holdout is None:
            for params in candidates[1: settings.top_k]:
                metrics, _, _ = _safe_run(run, searched, params, False)
                if "sharpe" in metrics:
                    rerun_sharpes.append(metrics["sharpe"])
        if best_returns is not None:
            scale = math.sqrt(periods_per_year(bars.timeframe))
            annualised = rerun_sharpes if trial_sharpes is None else trial_sharpes
            deflated = deflated_sharpe_report(
                best_returns,
                n_trials=max(1, int(n_trials)),
                trial_sharpes=[s / scale for s in annualised if s is not None],
                timeframe=bars.timeframe,
                variance_source="candidates" if trial_sharpes is None else "trials",
            )

    return ValidationReport(
        objective=objective,
        direction=spec.search.direction,
        holdout=holdout,
        walk_forward=walk_forward,
        deflated_sharpe=deflated,
    )


def _walk_forward(
    spec: StudySpec, bars: Market, candidates: Sequence[Mapping[str, Any]], run: Runner
) -> WalkForwardReport:
    settings = spec.validation
    objective = spec.search.objective
    maximize = spec.search.direction == "maximize"
    pool = list(candidates if settings.walk_forward_candidates == 0 else candidates[: settings.walk_forward_candidates])
    overall_best = trial_key(pool[0])
    reports = []
    for fold in walk_forward_folds(
        len(bars), settings.walk_forward_folds,
        mode=settings.walk_forward_mode, train_ratio=settings.walk_forward_train_ratio,
    ):
        train = bars.slice(fold.train.start, fold.train.stop)
        chosen: tuple[float, Mapping[str, Any]] | None = None
        for params in pool:
            metrics, _, _ = _safe_run(run, train, params, False)
            value = _objective(metrics, objective)
            if value is None:
                continue
            better = chosen is None or (value > chosen[0] if maximize else value < chosen[0])
            if better:
                chosen = (value, params)
        if chosen is None:
            reports.append(FoldReport(fold.index, fold.train, fold.test, None, None, None, None, {}, len(pool)))
            continue
        test = bars.slice(fold.test.start, fold.test.stop)
        metrics, _, _ = _safe_run(run, test, chosen[1], False)
        reports.append(FoldReport(
            index=fold.index,
            train=fold.train,
            test=fold.test,
            key=trial_key(chosen[1]),
            params=dict(chosen[1]),
            train_objective=chosen[0],
            test_objective=_objective(metrics, objective),
            test_metrics=metrics,
            candidates=len(pool),
        ))
    mean_train = _mean([r.train_objective for r in reports])
    mean_test = _mean([r.test_objective for r in reports])
    return WalkForwardReport(
        mode=settings.walk_forward_mode,
        folds=tuple(reports),
        mean_train_objective=mean_train,
        mean_test_objective=mean_test,
        efficiency=_ratio(mean_test, mean_train),
        best_chosen=sum(1 for r in reports if r.key == overall_best),
    )
