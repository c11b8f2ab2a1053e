"""The report's ``overfitting`` section: is the best trial real? Built from the store alone.

PBO by CSCV over the trials' stored per-block returns, the raw best against
the robust best (neighbour-smoothed objective), which parameters explain the
objective, and a Monte Carlo of the best stored trial's trades. Each part is
``None`` (or empty) when the store lacks what it needs: blocks were not
recorded, no trial kept its trades, fewer than two trials.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from typing import Any

import numpy as np

from engine.analysis.importance import importance
from engine.analysis.montecarlo import monte_carlo, returns_on_equity
from engine.analysis.pbo import cscv
from engine.analysis.stability import encode, stability
from engine.store.protocol import StudyStore
from engine.store.records import CompleteTrials, TrialRecord

#: Monte Carlo defaults of the report: paths, and the drawdown whose probability is given.
MC_PATHS = 10_000
MC_DRAWDOWN = 0.2
#: Splits beyond this are sampled (seeded): C(16, 8) = 12,870 are all kept.
MAX_SPLITS = 13_000
#: The best trials the Monte Carlo looks among for one that kept its trades.
MC_CANDIDATES = 20


def _trial(trials: CompleteTrials, index: int, smoothed: float | None = None) -> dict[str, Any]:
    return {
        "number": trials.numbers[index],
        "params": trials.params[index],
        "objective": trials.objectives[index],
        "smoothed": smoothed,
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def pbo_figures(figures: np.ndarray, seed: int) -> dict[str, Any] | None:
    """The PBO part of the section from the stored per-block figures (``None`` without enough of them).

    The study stores it with its validation when it ends (``seed`` and
    ``max_splits`` beside it), so the report reads it instead of running the
    CSCV a second time over the same figures.
    """
    if figures.shape[0] < 2 or figures.shape[1] < 2:
        return None
    result = cscv(figures, max_splits=MAX_SPLITS, seed=seed)
    figures_dict = result.as_dict()
    return {
        "pbo": result.pbo,
        "blocks": result.blocks,
        "splits": result.splits,
        "total_splits": result.total_splits,
        "trials": result.trials,
        "degradation": {
            "slope": figures_dict["degradation_slope"],
            "intercept": figures_dict["degradation_intercept"],
        },
        "prob_oos_loss": result.prob_oos_loss,
        "logit_median": figures_dict["logit_median"],
        "seed": seed,
        "max_splits": MAX_SPLITS,
    }


def warm_pbo() -> None:
    """Load the CSCV's numba kernel and start numba's threads on a tiny matrix (a PBO child does it
    while the search runs, so that neither is on the path from the last trial to the report)."""
    import numba  # noqa: F401 - loaded, :func:`cscv` takes its kernel whatever the size

    cscv(np.arange(16.0).reshape(4, 4), max_splits=MAX_SPLITS)


def pbo_of_sqlite(path: str, study_id: int, seed: int) -> dict[str, Any] | None:
    """:func:`pbo_figures` of the figures stored in the SQLite store at ``path`` (read here: the
    caller's event loop neither reads nor decodes them, and nothing large crosses a pipe)."""
    from engine.store.study_sqlite import read_trial_blocks

    _, figures = read_trial_blocks(path, study_id)
    return pbo_figures(figures, seed)


def _stored_pbo(stored: Any, shape: tuple[int, ...], seed: int) -> dict[str, Any] | None:
    """The PBO the study stored at its end, when it was computed as :func:`pbo_figures` would now
    (``shape``: the stored figures')."""
    if not isinstance(stored, dict) or "degradation" not in stored:
        return None  # a study from before the full figures were stored
    same = (stored.get("trials"), stored.get("blocks"), stored.get("seed"), stored.get("max_splits")) == (
        shape[0], shape[1], seed, MAX_SPLITS)
    return stored if same else None


async def build_overfitting(
    store: StudyStore, study_id: int, *, maximize: bool, sampler: str, seed: int = 0,
    stored_pbo: dict[str, Any] | None = None, complete: CompleteTrials | None = None,
    parts: dict[str, Any] | None = None, shape: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    """The ``overfitting`` section of a study's report (keys in ``docs/headless.md``).

    ``stored_pbo``: the study's stored ``validation.pbo``, used when it matches the stored figures;
    ``complete``: the study's complete trials by number, when the caller has read them already;
    ``parts``: :func:`trial_parts` of the study, when the caller has computed them already;
    ``shape``: the stored figures' shape, when the caller has read them already (they are read
    again only when the stored PBO is not of them).
    """
    later = None if parts is not None else asyncio.create_task(
        trial_parts(store, study_id, maximize=maximize, sampler=sampler, seed=seed, complete=complete))
    try:
        section: dict[str, Any] = {"pbo": None, "blocks": 0, "splits": 0}
        pbo = None if shape is None else _stored_pbo(stored_pbo, shape, seed)
        if pbo is None:
            _, figures = await store.trial_blocks(study_id)
            pbo = _stored_pbo(stored_pbo, figures.shape, seed) or pbo_figures(figures, seed)
        if pbo is not None:
            section.update({key: value for key, value in pbo.items() if key not in ("seed", "max_splits")})
            section["figure"] = "log return per block"
        section.update(await later if later is not None else parts or {})
    except BaseException:
        if later is not None:
            later.cancel()
        raise
    return section


async def trial_parts(
    store: StudyStore, study_id: int, *, maximize: bool, sampler: str, seed: int = 0,
    complete: CompleteTrials | None = None, best: list[TrialRecord] | None = None,
) -> dict[str, Any]:
    """The section's parts that need the trials alone, not the validation: ``stability``,
    ``importance`` and ``monte_carlo`` (in that order). ``complete``: as :func:`build_overfitting`;
    ``best``: the study's :data:`MC_CANDIDATES` best trials, when the caller has read them already."""
    # The Monte Carlo (numpy, mostly without the GIL) runs in a thread beside the rest.
    monte = asyncio.create_task(_monte_carlo(store, study_id, maximize=maximize, seed=seed, best=best))
    try:
        parts: dict[str, Any] = {"stability": None, "importance": {}}
        if complete is None:
            complete = (await store.complete_trials(study_id)).by_number()
        objective = np.array(complete.objectives, dtype=np.float64)  # (None: NaN)
        finite = np.isfinite(objective)
        if not finite.all():
            kept = np.flatnonzero(finite).tolist()
            complete = CompleteTrials([complete.numbers[i] for i in kept], [complete.params[i] for i in kept],
                                      [complete.objectives[i] for i in kept], [complete.durations[i] for i in kept])
            objective = objective[finite]
        if len(complete):
            params = complete.params
            names = list(dict.fromkeys(itertools.chain.from_iterable(params)))
            encoded = encode(params, names)
            found = stability(params, objective, names=names, maximize=maximize, gridded=sampler == "grid",
                              encoded=encoded)
            parts["stability"] = {
                "method": found.method,
                "neighbours": found.neighbours,
                "raw_best": _trial(complete, found.raw_best, _finite(found.raw_best_smoothed)),
                "robust_best": _trial(complete, found.robust_best, _finite(found.robust_best_smoothed)),
                "neighbour_drop": _finite(found.drop),
            }
            parts["importance"] = importance(params, objective, names=names, encoded=encoded)
    except BaseException:
        monte.cancel()
        raise
    parts["monte_carlo"] = await monte
    return parts


async def _monte_carlo(
    store: StudyStore, study_id: int, *, maximize: bool, seed: int, best: list[TrialRecord] | None = None
) -> dict[str, Any] | None:
    """Monte Carlo of the best trial that kept its trades (artifacts), on their returns on equity
    (``best``: as :func:`trial_parts`)."""
    kept = set(await store.artifact_numbers(study_id))
    if best is None:
        best = await store.best(study_id, maximize=maximize, k=MC_CANDIDATES)
    for trial in best[:MC_CANDIDATES]:
        if trial.number not in kept:
            continue
        returns = trade_returns(await store.artifacts(study_id, trial.number))
        if returns is None:
            continue
        returns = returns[np.isfinite(returns)]
        if returns.size == 0:
            continue
        result = await asyncio.to_thread(monte_carlo, returns, paths=MC_PATHS, seed=seed, threshold=MC_DRAWDOWN)
        return {"trial": trial.number, **result.as_dict()}
    return None


def trade_returns(arrays: dict[str, np.ndarray]) -> np.ndarray | None:
    """A trial's stored trades' returns on equity (``None`` without trades and their equity curve).

    The start cash is the final value less the trades' pnl (every fee and
    funding payment is in a trade's pnl, an open trade is marked at the last
    close), read from the equity curve stored with the trades: the same run,
    even when the trial's cash is a searched parameter.
    """
    trades = arrays.get("trades")
    if trades is None or trades.dtype.names is None or "pnl" not in trades.dtype.names:
        return None
    equity = arrays.get("equity")
    if equity is None or not len(equity) or not math.isfinite(float(equity[-1])):
        return None
    final = float(equity[-1])
    pnl = np.asarray(trades["pnl"], dtype=np.float64)
    return returns_on_equity(pnl, final - float(pnl.sum()))


def _fmt(value: Any, spec: str = ".4g") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return format(value, spec) if math.isfinite(value) else str(value)
    return str(value)


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.1f}%"


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())


def overfitting_markdown(section: dict[str, Any], objective: str) -> list[str]:
    """The section as Markdown lines (a heading, then one part per figure that could be computed)."""
    lines = ["", "## Is the best trial real?", ""]
    if section.get("pbo") is None:
        lines.append("_No per-block returns were recorded (`[validation] blocks = 0`, or a study made before them): "
                     "no probability of backtest overfitting._")
    else:
        sampled = section["splits"] < section.get("total_splits", section["splits"])
        degradation = section.get("degradation") or {}
        lines += [
            f"- **Probability of backtest overfitting (PBO)**: **{_pct(section['pbo'])}** over {section['splits']} "
            f"splits of {section['blocks']} blocks{' (a seeded sample)' if sampled else ''} and "
            f"{section.get('trials')} trials: how often the trial best on half the blocks ranked at or below the "
            "median on the other half (about 50% or more: the winner is luck).",
            f"- **Out of sample**: the chosen trial lost money in {_pct(section.get('prob_oos_loss'))} of splits; "
            f"degradation slope {_fmt(degradation.get('slope'))} (out-of-sample against in-sample log return).",
        ]
    stability = section.get("stability")
    if stability:
        raw, robust = stability["raw_best"], stability["robust_best"]
        how = "grid neighbours" if stability["method"] == "grid" else f"{stability['neighbours']} nearest trials"
        lines += [
            "",
            f"Parameter stability ({objective} averaged over each trial and its {how}):",
            "",
            f"| | trial | {objective} | smoothed | params |",
            "|---|---|---|---|---|",
            f"| raw best | #{raw['number']} | {_fmt(raw['objective'])} | {_fmt(raw['smoothed'])} | {_params(raw['params'])} |",
            f"| robust best | #{robust['number']} | {_fmt(robust['objective'])} | {_fmt(robust['smoothed'])} | "
            f"{_params(robust['params'])} |",
            "",
            f"- the raw best's neighbourhood is {_fmt(stability.get('neighbour_drop'))} below it "
            "(large: a spike; small: a plateau)",
        ]
    scores = section.get("importance") or {}
    if scores:
        lines += ["", f"Parameter importance (share of the variance of {objective} each explains alone):", "",
                  "| parameter | importance |", "|---|---|"]
        lines += [f"| {name} | {_pct(value)} |" for name, value in scores.items()]
    mc = section.get("monte_carlo")
    if mc:
        final, drawdown = mc["final_return"], mc["max_drawdown"]
        lines += [
            "",
            f"Monte Carlo of trial #{mc['trial']}'s {mc['trades']} trades ({mc['paths']} {mc['mode']} paths, seed "
            f"{mc['seed']}):",
            "",
            "| | 5% | 50% | 95% |",
            "|---|---|---|---|",
            f"| final return | {_pct(final['p5'])} | {_pct(final['p50'])} | {_pct(final['p95'])} |",
            f"| max drawdown | {_pct(drawdown['p5'])} | {_pct(drawdown['p50'])} | {_pct(drawdown['p95'])} |",
            "",
            f"- P(max drawdown > {_pct(mc['drawdown_threshold'])}) = {_pct(mc['prob_drawdown_over'])}",
        ]
        if mc.get("in_order_return") is not None:
            lines.append(
                f"- the trades in their own order: final return {_pct(mc['in_order_return'])} (the trial's own; each "
                "trade counts as its pnl over the account's equity before it, not over the trade's own notional)"
            )
    return lines
