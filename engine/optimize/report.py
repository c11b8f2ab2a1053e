"""The study report (JSON and Markdown), built from the store alone.

Nothing here needs the writer, the data or the workers: ``genesis report``
works on any store file, while a run is writing it or long after.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ConfigError
from engine.histogram import LogHistogram
from engine.optimize.overfitting import build_overfitting, overfitting_markdown, trial_parts
from engine.paths import named_path
from engine.store.factory import open_study_store
from engine.store.protocol import StudyStore
from engine.store.records import CompleteTrials, TrialRecord, TrialState
from engine.store.url import DatabaseUrl
from engine.timestamps import iso_utc

TOP_K = 10


def spec_fields(spec_toml: str) -> dict[str, Any]:
    """The report's fields of a stored study's spec (strategy, objective, direction, sampler, seed, data)."""
    from engine.config import parse_toml
    from engine.optimize.study import (
        strategy_stamp,  # the study writes the stamp; imported late (study imports us)
    )

    try:
        raw = parse_toml(spec_toml, "stored study")
    except ConfigError:
        return {}
    search = raw.get("search", {}) if isinstance(raw.get("search"), dict) else {}
    strategy = raw.get("strategy", {}) if isinstance(raw.get("strategy"), dict) else {}
    data = raw.get("data", {}) if isinstance(raw.get("data"), dict) else {}
    file = strategy.get("file")
    stamp = strategy_stamp(spec_toml) if file else None
    return {
        "strategy_file": None if not file else str(Path(stamp[0]) / file if stamp else file),
        "strategy_sha256": None if stamp is None else stamp[1],
        "objective": search.get("objective", "sharpe"),
        "direction": search.get("direction", "maximize"),
        "sampler": search.get("sampler", "grid"),
        "seed": search.get("seed"),
        "strategy": strategy.get("name"),
        "data": data.get("spec") or (" + ".join(map(str, data["specs"])) if isinstance(data.get("specs"), list) else None),
    }


def overfitting_settings(fields: dict[str, Any]) -> tuple[bool, str, int]:
    """``(maximize, sampler, seed)`` of a stored study (``fields``: :func:`spec_fields`), as its
    report's overfitting section reads them."""
    maximize = str(fields.get("direction", "maximize")).lower() != "minimize"
    return maximize, str(fields.get("sampler", "grid")), int(fields.get("seed") or 0)


def _trial_dict(trial: TrialRecord) -> dict[str, Any]:
    return {
        "number": trial.number,
        "key": trial.key,
        "params": trial.params,
        "objective": trial.objective,
        "metrics": trial.metrics,
        "duration_s": trial.duration_s,
        "worker": trial.worker,
    }


async def build_report(
    store: StudyStore, name: str, *, complete: CompleteTrials | None = None,
    overfitting_parts: dict[str, Any] | None = None, stored: CompleteTrials | None = None,
    facts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the report shows about study ``name``, as JSON-ready data (``complete``: its
    complete trials by number, when the caller has read them already; ``overfitting_parts``: the
    overfitting section's :func:`~engine.optimize.overfitting.trial_parts`, when computed already;
    ``stored``: the same complete trials in the order stored, which give the timings when every
    trial is complete; ``facts``: :func:`trial_facts` of the study, when read already)."""
    study = await store.require_study(name)
    fields = spec_fields(study.spec_toml)
    maximize, sampler, seed = overfitting_settings(fields)
    if facts is None:
        facts = await trial_facts(store, study.id, maximize=maximize, sampler=sampler, seed=seed, complete=complete,
                                  overfitting_parts=overfitting_parts, stored=stored)
    return {
        "study": study.name,
        "state": study.state.value,
        "error": study.error,
        "created": iso_utc(study.created),
        "updated": iso_utc(study.updated),
        "spec_hash": study.spec_hash,
        **fields,
        "trials": facts["trials"],
        "counts": facts["counts"],
        "checkpoint": {"batches": study.checkpoint_seq, "next_number": study.next_number},
        "best": facts["best"],
        "top": facts["top"],
        "timings": facts["timings"],
        "failures": facts["failures"],
        "pruned_by_step": facts["pruned_by_step"],
        "run": study.summary,
        "validation": study.validation,
        "overfitting": await build_overfitting(
            store, study.id, maximize=maximize, sampler=sampler, seed=seed,
            stored_pbo=(study.validation or {}).get("pbo"), parts=facts["overfitting"], shape=facts.get("blocks"),
        ),
        "artifacts": facts["artifacts"],
    }


async def trial_facts(
    store: StudyStore, study_id: int, *, maximize: bool, sampler: str, seed: int,
    complete: CompleteTrials | None = None, overfitting_parts: dict[str, Any] | None = None,
    stored: CompleteTrials | None = None, best: list[TrialRecord] | None = None,
) -> dict[str, Any]:
    """What :func:`build_report` shows of the study's trials alone (counts, best trials, timings,
    the overfitting section's :func:`~engine.optimize.overfitting.trial_parts`, stored artifacts),
    not of its record: final once the search has ended, so the headless runner reads them while the
    study validates. Arguments as :func:`build_report`'s; ``best``: the study's best trials, read
    with ``k`` at least :data:`TOP_K` and :data:`~engine.optimize.overfitting.MC_CANDIDATES`."""
    parts = None if overfitting_parts is not None else asyncio.create_task(trial_parts(
        store, study_id, maximize=maximize, sampler=sampler, seed=seed, complete=complete, best=best))
    try:
        counts = await store.counts(study_id)
        top = best[:TOP_K] if best is not None else await store.best(study_id, maximize=maximize, k=TOP_K)
        first = {**_trial_dict(top[0]), **await _per_symbol(store, study_id, top[0].number)} if top else None
        timings, failures, pruned_steps = await _timings(store, study_id, counts, stored)
        artifacts = await store.artifact_numbers(study_id)
    except BaseException:
        if parts is not None:
            parts.cancel()
        raise
    return {
        "trials": sum(counts.values()),
        "counts": {state.value: n for state, n in counts.items()},
        "best": first,
        "top": [_trial_dict(t) for t in top],
        "timings": timings,
        "failures": [{"error": error, "count": n} for error, n in failures.most_common(10)],
        "pruned_by_step": {str(step): n for step, n in sorted(pruned_steps.items())},
        "overfitting": overfitting_parts if parts is None else await parts,
        "artifacts": artifacts,
    }


async def _timings(
    store: StudyStore, study_id: int, counts: dict[TrialState, int], stored: CompleteTrials | None
) -> tuple[dict[str, Any], collections.Counter[str], collections.Counter[int]]:
    """The trials' timings, failures by error and pruned trials by step."""
    durations = LogHistogram()
    failures: collections.Counter[str] = collections.Counter()
    pruned_steps: collections.Counter[int] = collections.Counter()
    busy = 0.0
    complete_durations = _complete_durations(stored, counts) if stored is not None else None
    if complete_durations is not None:  # no failed or pruned trial: only the durations count
        kept = [duration for duration in complete_durations if duration is not None]
        durations.record_many((np.array(kept, dtype=np.float64) * 1e9).astype(np.int64))  # (int(): truncated)
        for value in kept:
            busy += value
    else:
        for state, duration, error, step in await store.timings(study_id):
            if duration is not None:
                durations.record(int(duration * 1e9))
                busy += duration
            if state is TrialState.FAILED:
                failures[(error or "unknown").split(" at ")[0][:160]] += 1
            elif state is TrialState.PRUNED:
                pruned_steps[int(step or 0)] += 1
    snapshot = durations.snapshot()
    timings = {
        "trial_time_total_s": busy,
        "mean_s": snapshot.mean / 1e9 if snapshot.count else None,
        "p50_s": snapshot.p50 / 1e9 if snapshot.count else None,
        "p95_s": snapshot.p95 / 1e9 if snapshot.count else None,
        "max_s": snapshot.max / 1e9 if snapshot.count else None,
    }
    return timings, failures, pruned_steps


def _complete_durations(stored: CompleteTrials, counts: dict[TrialState, int]) -> list[float | None] | None:
    """The durations :meth:`StudyStore.timings` gives of a study whose every trial is complete, from its
    complete trials in the order stored (the order the store's read gives, so the busy time adds up the
    same); ``None`` when some trial is not complete or the trials changed since ``stored`` was read."""
    total = sum(counts.values())
    if counts.get(TrialState.COMPLETE, 0) != total or len(stored) != total:
        return None
    return stored.durations


#: The per-symbol breakdown of a basket trial, as stored in its ``per_symbol`` artifact.
SYMBOL_COLUMNS = ("trades", "return_contribution", "win_rate", "exposure")


async def _per_symbol(store: StudyStore, study_id: int, number: int) -> dict[str, Any]:
    """``{"symbols": {symbol: {trades, return_contribution, win_rate, exposure}}}`` for a basket trial whose
    artifacts are stored (the top trials'), else ``{}``."""
    arrays = await store.artifacts(study_id, number)
    rows, names = arrays.get("per_symbol"), arrays.get("symbols")
    if rows is None or names is None or rows.dtype.names is None:
        return {}
    return {
        "symbols": {
            str(symbol): {column: row[column].item() for column in SYMBOL_COLUMNS if column in rows.dtype.names}
            for symbol, row in zip(names.tolist(), rows, strict=True)
        }
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}"
    return str(value)


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())


def _validation_lines(validation: dict[str, Any], objective: str) -> list[str]:
    """Hold-out table (in-sample against out-of-sample), walk-forward folds, deflated Sharpe."""
    lines = ["", "## Validation (in-sample against out-of-sample)", ""]
    holdout = validation.get("holdout")
    if isinstance(holdout, dict) and holdout.get("trials"):
        inside, outside = holdout.get("in_sample"), holdout.get("out_of_sample")
        lines.append(f"Hold-out: searched on bars {_span(inside)}, re-run on bars {_span(outside)}.")
        lines += ["", f"| rank | {objective} in | {objective} out | return in | return out | params |",
                  "|---|---|---|---|---|---|"]
        for t in holdout["trials"]:
            m_in, m_out = t.get("in_sample") or {}, t.get("out_of_sample") or {}
            lines.append(
                f"| {t.get('rank')} | {_fmt(t.get('objective_in'))} | {_fmt(t.get('objective_out'))} | "
                f"{_fmt(m_in.get('total_return'))} | {_fmt(m_out.get('total_return'))} | {_params(t.get('params') or {})} |"
                + (f" error: {t['error']}" if t.get("error") else "")
            )
        lines.append("")
        lines.append(f"- mean in-sample {_fmt(holdout.get('mean_in'))}, mean out-of-sample {_fmt(holdout.get('mean_out'))}, "
                     f"retention {_fmt(holdout.get('retention'))}")
    walk = validation.get("walk_forward")
    if isinstance(walk, dict) and walk.get("folds"):
        lines += ["", f"Walk-forward ({walk.get('mode')}, {len(walk['folds'])} folds):", "",
                  f"| fold | train | test | {objective} train | {objective} test | params |", "|---|---|---|---|---|---|"]
        for fold in walk["folds"]:
            lines.append(
                f"| {fold.get('index')} | {_span(fold.get('train'))} | {_span(fold.get('test'))} | "
                f"{_fmt(fold.get('train_objective'))} | {_fmt(fold.get('test_objective'))} | {_params(fold.get('params') or {})} |"
            )
        lines += ["", f"- mean train {_fmt(walk.get('mean_train_objective'))}, mean test {_fmt(walk.get('mean_test_objective'))}, "
                  f"efficiency {_fmt(walk.get('efficiency'))}"]
    dsr = validation.get("deflated_sharpe")
    if isinstance(dsr, dict):
        lines += [
            "",
            f"Deflated Sharpe ratio of the best trial: **{_fmt(dsr.get('dsr'))}** (probability that its true Sharpe is "
            f"above zero after {dsr.get('n_trials')} trials; annualised Sharpe {_fmt(dsr.get('sharpe_annualised'))}, "
            f"expected maximum under the null {_fmt(dsr.get('expected_max_sharpe'))} per period, skewness "
            f"{_fmt(dsr.get('skewness'))}, kurtosis {_fmt(dsr.get('kurtosis'))}).",
        ]
    return lines


def _span(value: Any) -> str:
    if isinstance(value, list | tuple) and len(value) == 2:
        return f"{value[0]}–{value[1]}"
    return _fmt(value)


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown."""
    objective = report.get("objective", "objective")
    counts = report["counts"]
    lines = [
        f"# Study `{report['study']}`",
        "",
        f"- **state**: {report['state']}" + (f" ({report['error']})" if report.get("error") else ""),
        f"- **strategy**: {_fmt(report.get('strategy'))} on `{_fmt(report.get('data'))}`"
        + (f" (file `{report['strategy_file']}`, sha256 {str(report.get('strategy_sha256'))[:12]})"
           if report.get("strategy_file") else ""),
        f"- **search**: {_fmt(report.get('sampler'))}, seed {_fmt(report.get('seed'))}, "
        f"{report.get('direction', 'maximize')} `{objective}`",
        f"- **trials**: {report['trials']} ({counts.get('complete', 0)} complete, {counts.get('failed', 0)} failed, "
        f"{counts.get('pruned', 0)} pruned)",
        f"- **created**: {report['created']}, **updated**: {report['updated']}, spec hash `{report['spec_hash']}`",
    ]
    run = report.get("run") or {}
    if run:
        lines.append(
            f"- **last run**: {_fmt(run.get('elapsed_s'))} s, {_fmt(run.get('trials_per_s'))} trials/s, "
            f"backend {_fmt(run.get('backend'))} with {_fmt(run.get('workers'))} workers"
        )
    timings = report["timings"]
    if timings.get("mean_s") is not None:
        lines.append(
            f"- **trial time**: mean {_fmt(timings['mean_s'])} s, p50 {_fmt(timings['p50_s'])} s, "
            f"p95 {_fmt(timings['p95_s'])} s, max {_fmt(timings['max_s'])} s"
        )
    best = report.get("best")
    lines += ["", "## Best trial", ""]
    if best is None:
        lines.append("No complete trial.")
    else:
        lines.append(f"Trial #{best['number']}: **{objective} = {_fmt(best['objective'])}** with {_params(best['params'])}")
        if best.get("metrics"):
            lines += ["", "| metric | value |", "|---|---|"]
            lines += [f"| {k} | {_fmt(v)} |" for k, v in best["metrics"].items()]
        if best.get("symbols"):
            lines += ["", "Per symbol (the portfolio of the best trial):", "",
                      "| symbol | trades | return contribution | win rate | exposure |", "|---|---|---|---|---|"]  # fmt: skip
            lines += [
                f"| {symbol} | " + " | ".join(_fmt(row.get(column)) for column in SYMBOL_COLUMNS) + " |"
                for symbol, row in best["symbols"].items()
            ]
    top = report.get("top") or []
    if len(top) > 1:
        metric_names = [m for m in ("total_return", "max_drawdown", "trades") if m in (top[0].get("metrics") or {})]
        lines += ["", f"## Top {len(top)}", ""]
        lines.append("| # | " + objective + " | " + " | ".join(metric_names) + (" | " if metric_names else "") + "params |")
        lines.append("|---|---|" + "---|" * len(metric_names) + "---|")
        for t in top:
            metrics = t.get("metrics") or {}
            cells = [str(t["number"]), _fmt(t["objective"]), *(_fmt(metrics.get(m)) for m in metric_names), _params(t["params"])]
            lines.append("| " + " | ".join(cells) + " |")
    if report.get("validation"):
        lines += _validation_lines(report["validation"], objective)
    if report.get("overfitting"):
        lines += overfitting_markdown(report["overfitting"], objective)
    if report.get("failures"):
        lines += ["", "## Failures", "", "| count | error |", "|---|---|"]
        lines += [f"| {f['count']} | {f['error'].replace('|', '/')} |" for f in report["failures"]]
    if report.get("pruned_by_step"):
        lines += ["", "## Pruned (successive halving)", ""]
        lines += [f"- step {step}: {n}" for step, n in report["pruned_by_step"].items()]
    return "\n".join(lines) + "\n"


async def report_from_db(db: str | Path | DatabaseUrl, name: str) -> dict[str, Any]:
    """Open ``db`` read-only and build the report of study ``name``."""
    store = await open_study_store(db, readonly=True)
    try:
        return await build_report(store, name)
    finally:
        await store.close()


def write_report(report: dict[str, Any], directory: str | Path) -> tuple[Path, Path]:
    """Write ``<study>.md`` and ``<study>.json`` into ``directory`` (atomically, each)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = (named_path(directory, report["study"], ".md"), named_path(directory, report["study"], ".json"))
    contents = (render_markdown(report), json.dumps(report, indent=2, default=str) + "\n")
    for path, text in zip(paths, contents, strict=True):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return paths
