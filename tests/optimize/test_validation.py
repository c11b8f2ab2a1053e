"""Validation against overfitting: ranges, folds, the deflated Sharpe ratio, and the report."""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import backtest
from engine.data import load
from engine.errors import DataError
from engine.optimize.space import trial_key
from engine.optimize.spec import load_study
from engine.optimize.validation import (
    EULER_GAMMA,
    deflated_sharpe,
    deflated_sharpe_report,
    equity_returns,
    expected_max_sharpe,
    holdout_ranges,
    in_sample,
    normal_cdf,
    return_moments,
    split_holdout,
    validate,
    walk_forward_folds,
)

# --------------------------------------------------------------------------- the paper's formula


def paper_dsr(sr: float, n: int, v: float, t: int, skew: float, kurt: float) -> float:
    """Bailey & López de Prado (2014), eq. (2) and the SR_0 of their Appendix, written out directly."""
    z = NormalDist()
    sr0 = math.sqrt(v) * ((1 - EULER_GAMMA) * z.inv_cdf(1 - 1 / n) + EULER_GAMMA * z.inv_cdf(1 - 1 / (n * math.e)))
    return z.cdf((sr - sr0) * math.sqrt(t - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2))


def test_the_papers_worked_example() -> None:
    # Annualised SR 2.5 over 1250 daily returns, skew -3, kurtosis 10, 100 trials
    # with an annualised SR variance of 0.5: the paper reports SR_0 = 0.1132 and DSR = 0.9004.
    sr, v = 2.5 / math.sqrt(250), 0.5 / 250
    assert expected_max_sharpe(100, v) == pytest.approx(0.1132, abs=5e-5)
    dsr = deflated_sharpe(sr, n_trials=100, sharpe_variance=v, n_returns=1250, skewness=-3, kurtosis=10)
    assert dsr == pytest.approx(0.9004, abs=5e-5)


@settings(max_examples=200, deadline=None)
@given(
    sr=st.floats(-0.3, 0.3),
    n=st.integers(2, 100_000),
    v=st.floats(1e-6, 0.05),
    t=st.integers(10, 100_000),
    skew=st.floats(-2, 2),
    kurt=st.floats(1.5, 20),
)
def test_matches_a_direct_transcription(sr: float, n: int, v: float, t: int, skew: float, kurt: float) -> None:
    if 1 - skew * sr + (kurt - 1) / 4 * sr**2 <= 0:
        assert math.isnan(deflated_sharpe(sr, n_trials=n, sharpe_variance=v, n_returns=t, skewness=skew, kurtosis=kurt))
        return
    ours = deflated_sharpe(sr, n_trials=n, sharpe_variance=v, n_returns=t, skewness=skew, kurtosis=kurt)
    assert ours == pytest.approx(paper_dsr(sr, n, v, t, skew, kurt), abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(sr=st.floats(0.0, 0.2), v=st.floats(1e-5, 0.01), t=st.integers(100, 10_000), n=st.integers(2, 5000))
def test_more_trials_deflate_more(sr: float, v: float, t: int, n: int) -> None:
    def dsr(trials: int) -> float:
        return deflated_sharpe(sr, n_trials=trials, sharpe_variance=v, n_returns=t, skewness=0.0, kurtosis=3.0)

    assert dsr(n) >= dsr(n + 1) >= dsr(10 * n)
    if dsr(10 * n) > 1e-9 and dsr(n) < 1 - 1e-9:  # strictly, away from the CDF's saturation
        assert dsr(n) > dsr(10 * n)
    assert expected_max_sharpe(n + 1, v) > expected_max_sharpe(n, v)
    assert expected_max_sharpe(n, 2 * v) > expected_max_sharpe(n, v)


def test_one_trial_is_the_probabilistic_sharpe_against_zero() -> None:
    assert expected_max_sharpe(1, 0.01) == 0.0
    assert expected_max_sharpe(50, 0.0) == 0.0
    dsr = deflated_sharpe(0.05, n_trials=1, sharpe_variance=0.01, n_returns=401, skewness=0.0, kurtosis=3.0)
    assert dsr == pytest.approx(NormalDist().cdf(0.05 * 20 / math.sqrt(1 + 0.5 * 0.05**2)))
    assert math.isnan(deflated_sharpe(0.1, n_trials=5, sharpe_variance=0.01, n_returns=1, skewness=0, kurtosis=3))


def test_normal_cdf_through_erf() -> None:
    for x in (-6.0, -1.96, -0.3, 0.0, 0.7, 1.645, 4.0):
        assert normal_cdf(x) == pytest.approx(NormalDist().cdf(x), abs=1e-12)


def test_return_moments() -> None:
    rng = np.random.default_rng(4)
    r = rng.standard_t(5, size=5000) * 0.01 + 0.0005
    sr, skew, kurt = return_moments(r)
    c = r - r.mean()
    assert sr == pytest.approx(r.mean() / r.std(ddof=1))
    assert skew == pytest.approx(np.mean(c**3) / np.mean(c**2) ** 1.5)
    assert kurt == pytest.approx(np.mean(c**4) / np.mean(c**2) ** 2)
    assert kurt > 3.5  # a fat-tailed t(5) sample
    normal = return_moments(rng.standard_normal(200_000))
    assert normal[1] == pytest.approx(0.0, abs=0.03) and normal[2] == pytest.approx(3.0, abs=0.05)


def test_report_converts_annualised_sharpe_ratios() -> None:
    rng = np.random.default_rng(0)
    returns = rng.normal(0.001, 0.01, 1000)
    annual = [1.0, 2.0, 3.0, 4.0]
    report = deflated_sharpe_report(returns, n_trials=40, trial_sharpes=[a / math.sqrt(365) for a in annual], timeframe="1d")
    assert report.sharpe_variance == pytest.approx(np.var(annual, ddof=1) / 365)
    assert report.sharpe_annualised == pytest.approx(report.sharpe * math.sqrt(365))
    assert report.n_returns == 1000 and report.n_trials == 40
    assert 0.0 <= report.dsr <= 1.0


# --------------------------------------------------------------------------- ranges and folds


def test_holdout_ranges() -> None:
    inside, held = holdout_ranges(1000, 0.25)
    assert (inside.start, inside.stop, held.start, held.stop) == (0, 750, 750, 1000)
    inside, held = holdout_ranges(10, 0.33)
    assert (inside.stop, held.start, len(held)) == (7, 7, 3)
    with pytest.raises(DataError, match=r"validation\.out_of_sample"):
        holdout_ranges(3, 0.5)
    with pytest.raises(DataError):
        holdout_ranges(100, 0.0)


def test_in_sample_checks_the_folds_up_front(tmp_path: Path) -> None:
    spec = _study(tmp_path, oos=0.0, folds=12)
    tiny = load("synthetic:bars=20,seed=1")
    with pytest.raises(DataError, match="walk_forward_folds"):
        in_sample(tiny, spec.validation)
    assert len(in_sample(tiny, _study(tmp_path, oos=0.0, folds=0).validation)) == 20


def test_walk_forward_fold_boundaries() -> None:
    rolling = walk_forward_folds(100, 4, mode="rolling", train_ratio=3.0)
    assert [(f.train.start, f.train.stop, f.test.start, f.test.stop) for f in rolling] == [
        (0, 44, 44, 58), (14, 58, 58, 72), (28, 72, 72, 86), (42, 86, 86, 100),
    ]
    anchored = walk_forward_folds(100, 4, mode="anchored", train_ratio=3.0)
    assert [(f.train.start, f.train.stop, f.test.start, f.test.stop) for f in anchored] == [
        (0, 44, 44, 58), (0, 58, 58, 72), (0, 72, 72, 86), (0, 86, 86, 100),
    ]
    with pytest.raises(DataError, match="walk_forward_folds"):
        walk_forward_folds(10, 5)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(20, 100_000), folds=st.integers(1, 12), ratio=st.floats(0.25, 8.0), mode=st.sampled_from(["rolling", "anchored"]))
def test_walk_forward_fold_properties(n: int, folds: int, ratio: float, mode: str) -> None:
    try:
        result = walk_forward_folds(n, folds, mode=mode, train_ratio=ratio)
    except DataError:
        test = math.floor(n / (folds + ratio))
        assert test < 2 or n - folds * test < 2  # a test range or the first train range too short
        return
    assert len(result) == folds
    assert result[-1].test.stop == n
    test_len = len(result[0].test)
    for i, fold in enumerate(result):
        assert fold.index == i
        assert fold.train.stop == fold.test.start  # the test range follows its train range
        assert len(fold.test) == test_len >= 2
        if i:
            assert fold.test.start == result[i - 1].test.stop  # test ranges tile the end
        if mode == "anchored":
            assert fold.train.start == 0
        else:
            assert len(fold.train) == len(result[0].train)
        assert fold.train.start >= 0 and len(fold.train) >= 2


# --------------------------------------------------------------------------- validate, end to end

STUDY = """\
name = "v"
[data]
spec = "synthetic:bars=3000,seed=3,timeframe=1h"
[strategy]
name = "sma_cross"
[space]
fast = {{ int = [4, 16], step = 4 }}
slow = {{ int = [20, 60], step = 20 }}
[backtest]
fee = 0.0005
[validation]
out_of_sample = {oos}
walk_forward_folds = {folds}
walk_forward_mode = "{mode}"
top_k = 3
walk_forward_candidates = {candidates}
"""


def _study(tmp_path: Path, *, oos: float = 0.25, folds: int = 3, mode: str = "rolling", candidates: int = 0):
    path = tmp_path / "v.toml"
    path.write_text(STUDY.format(oos=oos, folds=folds, mode=mode, candidates=candidates))
    return load_study(path)


def _sharpe(bars, params, fee=0.0005) -> float:
    return backtest.run(bars, "sma_cross", params, fee=fee).metrics.sharpe


def test_validate_reruns_the_best_on_unseen_data(tmp_path: Path) -> None:
    spec = _study(tmp_path)
    bars = load(spec.data.spec)
    searched = in_sample(bars, spec.validation)
    assert len(searched) == 2250
    held = split_holdout(bars, 0.25)[1]
    points = list(spec.space.iter_grid())
    scores = {trial_key(p): _sharpe(searched, p) for p in points}
    ranked = sorted(points, key=lambda p: -scores[trial_key(p)])
    report = validate(spec, bars, ranked, n_trials=len(points), trial_sharpes=list(scores.values()))

    assert report.objective == "sharpe" and report.direction == "maximize"
    holdout = report.holdout
    assert holdout is not None and len(holdout.trials) == 3
    assert (holdout.in_sample.stop, holdout.out_of_sample.start, holdout.out_of_sample.stop) == (2250, 2250, 3000)
    means = ([c.objective_in for c in holdout.trials], [c.objective_out for c in holdout.trials])
    assert holdout.mean_in == pytest.approx(np.mean(means[0]))
    assert holdout.mean_out == pytest.approx(np.mean(means[1]))
    if holdout.mean_in > 0:
        assert holdout.retention == pytest.approx(holdout.mean_out / holdout.mean_in)
    else:
        assert holdout.retention is None
    for rank, check in enumerate(holdout.trials, start=1):
        params = ranked[rank - 1]
        assert check.rank == rank and check.key == trial_key(params) and check.error is None
        assert check.objective_in == pytest.approx(scores[check.key])
        assert check.objective_out == pytest.approx(_sharpe(held, params))
        trades = check.out_of_sample["trades"]
        assert isinstance(trades, int) and trades == backtest.run(held, "sma_cross", params, fee=0.0005).metrics.trades

    # The deflated Sharpe: the best trial's own returns, every trial's dispersion.
    deflated = report.deflated_sharpe
    assert deflated is not None and deflated.variance_source == "trials"
    assert deflated.n_trials == len(points) and deflated.n_returns == 2250
    assert deflated.sharpe_annualised == pytest.approx(scores[trial_key(ranked[0])], rel=1e-9)
    scale = math.sqrt(365 * 24)
    assert deflated.sharpe_variance == pytest.approx(np.var(list(scores.values()), ddof=1) / scale**2)
    result = backtest.run(searched, "sma_cross", ranked[0], fee=0.0005, equity=True)
    _, skew, kurt = return_moments(equity_returns(result.equity, 10_000.0))
    assert deflated.dsr == pytest.approx(
        paper_dsr(deflated.sharpe, len(points), deflated.sharpe_variance, 2250, skew, kurt), abs=1e-9
    )

    # Walk-forward: on each fold the best candidate on its train range, scored on its test range.
    walk = report.walk_forward
    assert walk is not None and walk.mode == "rolling" and len(walk.folds) == 3
    for fold in walk.folds:
        train = bars.slice(fold.train.start, fold.train.stop)
        test = bars.slice(fold.test.start, fold.test.stop)
        best = max(ranked, key=lambda p: _sharpe(train, p))
        assert fold.key == trial_key(best) and fold.candidates == len(ranked)
        assert fold.train_objective == pytest.approx(_sharpe(train, best))
        assert fold.test_objective == pytest.approx(_sharpe(test, best))
    assert walk.folds[-1].test.stop == 3000
    assert walk.best_chosen == sum(1 for f in walk.folds if f.key == trial_key(ranked[0]))

    text = json.dumps(report.as_dict(), allow_nan=False)
    assert json.loads(text)["deflated_sharpe"]["n_trials"] == len(points)


def test_validate_without_a_holdout_still_deflates(tmp_path: Path) -> None:
    spec = _study(tmp_path, oos=0.0, folds=2, mode="anchored", candidates=2)
    bars = load(spec.data.spec)
    points = list(spec.space.iter_grid())
    ranked = sorted(points, key=lambda p: -_sharpe(bars, p))
    report = validate(spec, bars, ranked, n_trials=len(points))
    assert report.holdout is None
    assert report.walk_forward is not None
    assert all(f.train.start == 0 and f.candidates == 2 for f in report.walk_forward.folds)
    deflated = report.deflated_sharpe
    assert deflated is not None and deflated.variance_source == "candidates"
    assert deflated.n_returns == 3000
    assert deflated.sharpe_annualised == pytest.approx(_sharpe(bars, ranked[0]), rel=1e-9)
    # Without every trial's Sharpe, the top_k candidates' in-sample ratios stand in.
    top = [_sharpe(bars, p) / math.sqrt(365 * 24) for p in ranked[:3]]
    assert deflated.sharpe_variance == pytest.approx(float(np.var(top, ddof=1)))


def test_a_failing_candidate_is_reported_not_raised(tmp_path: Path) -> None:
    spec = _study(tmp_path, folds=0)
    bars = load(spec.data.spec)
    bad = {"fast": 30, "slow": 20}  # breaks the strategy's fast < slow
    good = {"fast": 4, "slow": 20}
    report = validate(spec, bars, [good, bad], n_trials=2)
    assert report.holdout is not None
    failed = report.holdout.trials[1]
    assert failed.error is not None and "StrategyError" in failed.error
    assert failed.objective_in is None and failed.in_sample == {}
    assert report.holdout.trials[0].error is None
