"""A run's report directory: ``report.md``, ``report.json`` and the charts, from the store alone.

The optimizer's report (:func:`engine.optimize.report.build_report`: study,
data, best trials, in-sample against out-of-sample, deflated Sharpe) is
extended with what a morning reader of a cron job needs: the charts, this
run (how it stopped, trials it added), every earlier run of the study, the
profile summary of the run, and the alerts. Everything comes from the store
(the study's trials and artifacts, the ``alerts``, ``headless_runs`` tables),
so ``genesis report NAME --db PATH --out DIR`` rebuilds the same directory.

Layout under the report root (``--report DIR``)::

    DIR/<study>.md, DIR/<study>.json          the latest report
    DIR/<study>/<stamp>-run<N>/report.md       one directory per run
                               report.json
                               equity.svg convergence.svg heatmap.svg
                               montecarlo.svg importance.svg
    DIR/<study>/latest -> <stamp>-run<N>
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import GenesisError
from engine.headless.charts import draw_charts, write_charts
from engine.headless.output import json_safe
from engine.optimize.overfitting import MC_CANDIDATES
from engine.optimize.report import TOP_K
from engine.paths import named_path
from engine.store.protocol import StudyStore
from engine.store.records import CompleteTrials, TrialRecord
from engine.store.run_history import RunHistory, RunRecord
from engine.store.url import DatabaseUrl, StoreLocation, store_location
from engine.timestamps import iso_utc

EQUITY_CURVES = 5
#: The best trials read for the report: the equity chart's candidates, the Monte Carlo's, the top table.
BEST_READ = max(EQUITY_CURVES * 4, MC_CANDIDATES, TOP_K)
ALERT_ROWS = 200


def run_dir_name(run: RunRecord | None, when: float | None = None) -> str:
    """``20261122T035109Z-run3`` (the run's start; ``regenerated`` when there is no run)."""
    epoch = run.started if run is not None else (when if when is not None else dt.datetime.now(dt.UTC).timestamp())
    stamp = dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-run{run.id}" if run is not None else f"{stamp}-regenerated"


def _runs(db: StoreLocation, name: str) -> list[RunRecord]:
    """The study's headless runs (kept in SQLite stores only: none for PostgreSQL yet)."""
    return RunHistory(db).runs(name) if isinstance(db, Path) else []


async def _chart_data(
    store: StudyStore, study_id: int, maximize: bool, complete: CompleteTrials, best: list[TrialRecord] | None = None
) -> dict[str, Any]:
    """Trial numbers and objectives, points for the heatmap, equity of the best trials.

    ``complete``: the study's complete trials in the order they were stored; ``best``: its
    :data:`BEST_READ` best trials, when read already.
    """
    from engine.telemetry_map import build_heatmap

    values = np.array(complete.objectives, dtype=np.float64)  # (None: NaN)
    kept = np.isfinite(values)
    params = complete.params
    numbers = complete.numbers
    if not kept.all():
        params = [p for p, ok in zip(params, kept.tolist(), strict=True) if ok]
        numbers = np.asarray(numbers, dtype=np.int64)[kept].tolist()
        values = values[kept]
    objectives = values.tolist()
    equity: list[tuple[str, Any]] = []
    with_artifacts = set(await store.artifact_numbers(study_id))
    for trial in best if best is not None else await store.best(study_id, maximize=maximize, k=BEST_READ):
        if len(equity) >= EQUITY_CURVES:
            break
        if trial.number not in with_artifacts:
            continue
        arrays = await store.artifacts(study_id, trial.number)
        curve = arrays.get("equity")
        if curve is not None and len(curve):
            # As an array: a list of 100k Python floats per curve cost more than drawing it.
            equity.append((f"#{trial.number} ({trial.objective:.3g})", np.asarray(curve, dtype=np.float64)))
    return {
        "numbers": list(numbers),
        "objectives": objectives,
        "heatmap": build_heatmap(list(zip(params, objectives, strict=True)), maximize),
        "equity": equity,
    }


async def _alerts(db: StoreLocation, name: str) -> list[dict[str, Any]]:
    """The study's latest alerts, oldest first (none when the store keeps none)."""
    from engine.store.alerts import AlertStore

    if not isinstance(db, Path):
        return []  # alerts are kept in SQLite stores only (docs/storage.md)
    try:
        async with AlertStore(db, study=name, readonly=True) as store:
            alerts = await store.recent(ALERT_ROWS)
    except GenesisError:
        return []
    return [
        {"ts": iso_utc(a.ts), "raised_at": iso_utc(a.raised_at), "rule": a.rule, "level": a.level, "state": a.state,
         "value": a.value, "threshold": a.threshold, "message": a.message}
        for a in alerts
    ]


async def _drivers(db: StoreLocation, name: str) -> list[dict[str, Any]]:
    """The drivers that shared the study (PostgreSQL), oldest first; none on SQLite."""
    if isinstance(db, Path):
        return []
    from engine.store.factory import open_study_store

    async with await open_study_store(db, readonly=True) as store:
        study = await store.require_study(name)
        return [
            {"driver": d.driver, "host": d.host, "pid": d.pid, "state": d.state, "trials": d.trials,
             "trials_per_s": round(d.rate, 2), "last_seen": iso_utc(d.heartbeat)}
            for d in await store.drivers(study.id)
        ]


@dataclass(frozen=True, slots=True)
class TrialParts:
    """What a report reads and computes from a study's final trials alone (not its validation):
    the headless runner gathers it while the study validates (the PBO runs in another process)."""

    study_id: int
    facts: dict[str, Any]  # :func:`~engine.optimize.report.trial_facts`
    charts: dict[str, Any]  # :func:`_chart_data`
    drawn: dict[str, str]  # the charts, drawn
    benchmark: dict[str, Any]  # :func:`~engine.optimize.rerun.study_benchmark`

    @property
    def overfitting(self) -> dict[str, Any]:
        """The overfitting section's trial parts (stability, importance, Monte Carlo)."""
        return self.facts["overfitting"]

    def with_pbo(self, pbo: Any) -> TrialParts:
        """These parts and the PBO the study computed at the end of the search that ended with them
        (its validation's ``pbo``): it was computed over these trials' figures, so the report takes
        it without reading them again."""
        if not isinstance(pbo, dict) or not isinstance(pbo.get("trials"), int) or not isinstance(pbo.get("blocks"), int):
            return self
        return dataclasses.replace(self, facts={**self.facts, "blocks": (pbo["trials"], pbo["blocks"])})


async def read_trial_parts(db: str | Path | DatabaseUrl, name: str) -> TrialParts:
    """The report's :class:`TrialParts` of study ``name``, once its search has ended (its trials final)."""
    from engine.optimize.report import overfitting_settings, spec_fields, trial_facts
    from engine.optimize.rerun import study_benchmark
    from engine.store.factory import open_study_store

    store = await open_study_store(store_location(db), readonly=True)
    try:
        study = await store.require_study(name)
        fields = spec_fields(study.spec_toml)
        maximize, sampler, seed = overfitting_settings(fields)
        stored = await _complete_trials(store, study.id)
        best = await store.best(study.id, maximize=maximize, k=BEST_READ)
        # The benchmark's data loads in a thread, the Monte Carlo runs in another, beside the charts' Python.
        benchmark = asyncio.create_task(study_benchmark(
            db, name, _total_return(best[0].metrics if best else None), spec_toml=study.spec_toml))
        facts = asyncio.create_task(trial_facts(
            store, study.id, maximize=maximize, sampler=sampler, seed=seed, complete=stored.by_number(),
            stored=stored, best=best))
        try:
            charts = await _chart_data(store, study.id, maximize, stored, best)
            read = await facts
        except BaseException:
            facts.cancel()
            benchmark.cancel()
            raise
    finally:
        await store.close()
    held = await benchmark
    drawn = _draw(charts, maximize=maximize, objective=str(fields.get("objective", "objective")),
                  overfitting=json_safe(read["overfitting"]))
    return TrialParts(study.id, read, charts, drawn, held)


def _total_return(metrics: dict[str, Any] | None) -> float | None:
    """The best trial's total return, which the benchmark is set beside (``None`` when not a number)."""
    value = (metrics or {}).get("total_return")
    return value if isinstance(value, (int, float)) else None


async def _complete_trials(store: StudyStore, study_id: int) -> CompleteTrials:
    """Read once, as columns, for the overfitting section (by number) and the charts (in the order stored)."""
    return await store.complete_trials(study_id)


async def build_full_report(
    db: str | Path | DatabaseUrl, name: str, *, run_id: int | None = None, parts: TrialParts | None = None
) -> tuple[dict[str, Any], dict]:
    """The report dict (optimizer report + runs, this run, profile, alerts) and the chart data
    (``parts``: :func:`read_trial_parts` of the study's final trials, when read already: the chart
    data is then ``parts.charts``)."""
    from engine.optimize.report import build_report
    from engine.optimize.rerun import study_benchmark
    from engine.store.factory import open_study_store

    db = store_location(db)
    store = await open_study_store(db, readonly=True)
    try:
        study = await store.require_study(name)
        if parts is not None and parts.study_id != study.id:
            parts = None  # another study's (a re-run's archive)
        if parts is not None:
            report = await build_report(store, name, facts=parts.facts)
            charts = parts.charts
        else:
            stored = await _complete_trials(store, study.id)
            report = await build_report(store, name, complete=stored.by_number(), stored=stored)
            maximize = str(report.get("direction", "maximize")).lower() != "minimize"
            charts = await _chart_data(store, study.id, maximize, stored)
    finally:
        await store.close()
    runs = _runs(db, name)
    this = None
    if runs:
        this = next((r for r in runs if r.id == run_id), None) if run_id is not None else runs[-1]
    report["runs"] = [r.as_dict() for r in runs]
    report["this_run"] = this.as_dict() if this is not None else None
    report["profile"] = this.profile if this is not None else None
    report["alerts"] = await _alerts(db, name)
    report["drivers"] = await _drivers(db, name)
    if parts is not None:
        report["benchmark"] = parts.benchmark
    else:
        report["benchmark"] = await study_benchmark(db, name, _total_return((report.get("best") or {}).get("metrics")))
    report["charts"] = {"equity": "equity.svg", "convergence": "convergence.svg", "heatmap": "heatmap.svg"}
    if report.get("overfitting") is not None:
        report["charts"].update({"montecarlo": "montecarlo.svg", "importance": "importance.svg"})
    return json_safe(report), charts


def render_full_markdown(report: dict[str, Any]) -> str:
    """The optimizer's Markdown report with the headless sections after it."""
    from engine.optimize.report import render_markdown

    lines = [render_markdown(report).rstrip("\n")]
    this = report.get("this_run")
    if this:
        reason = {
            "complete": "the study is complete",
            "budget": f"the time budget ({_duration(this.get('max_runtime_s'))}) ran out; the next run resumes",
            "signal": "stopped by a signal; the next run resumes",
            "failure": "the run failed",
        }.get(str(this.get("stop_reason")), str(this.get("stop_reason") or "still running"))
        lines += [
            "", "## This run", "",
            f"- **run**: #{this['id']}, {this.get('started')} to {this.get('ended') or '…'}"
            f" ({_duration(this.get('elapsed_s'))})",
            f"- **ended**: {reason}; exit code {this.get('exit_code')}",
            f"- **trials**: {this.get('trials_this_run')} this run ({this.get('trials_before')} before, "
            f"{this.get('trials_after')} after)",
        ]
    lines += _benchmark_markdown(report.get("benchmark"))
    if report.get("validation") is None:
        lines += ["", "_Validation (out-of-sample, walk-forward, deflated Sharpe) runs when the study completes._"]
    lines += ["", "## Charts", ""]
    for name, file in (report.get("charts") or {}).items():
        lines.append(f"![{name}]({file})")
    runs = report.get("runs") or []
    if runs:
        lines += ["", "## Runs", "", "| run | started | elapsed | stopped | exit | trials added | trials after |",
                  "|---|---|---|---|---|---|---|"]
        for r in runs:
            lines.append(
                f"| {r['id']} | {r.get('started')} | {_duration(r.get('elapsed_s'))} | {r.get('stop_reason') or '–'} "
                f"| {_cell(r.get('exit_code'))} | {_cell(r.get('trials_this_run'))} | {_cell(r.get('trials_after'))} |"
            )
    drivers = report.get("drivers") or []
    if drivers:
        lines += ["", "## Drivers", "", "| driver | host | pid | state | trials | trials/s | last seen |",
                  "|---|---|---|---|---|---|---|"]
        for d in drivers:
            lines.append(f"| {d['driver']} | {d['host']} | {d['pid']} | {d['state']} | {d['trials']} "
                         f"| {d['trials_per_s']} | {d['last_seen']} |")
    profile = report.get("profile")
    if profile:
        lines += ["", _profile_markdown(profile)]
    alerts = report.get("alerts") or []
    lines += ["", "## Alerts", ""]
    if not alerts:
        lines.append("No alert was raised.")
    else:
        lines += ["| time | level | state | rule | message |", "|---|---|---|---|---|"]
        for a in alerts:
            message = str(a.get("message", "")).replace("|", "/")
            lines.append(f"| {a.get('ts')} | {a.get('level')} | {a.get('state')} | {a.get('rule')} | {message} |")
    return "\n".join(lines) + "\n"


def _percent(value: Any, sign: bool = False) -> str:
    if not isinstance(value, (int, float)):
        return "–"
    return f"{value * 100:+.2f} %" if sign else f"{value * 100:.2f} %"


def _benchmark_markdown(benchmark: dict[str, Any] | None) -> list[str]:
    """The best trial against buy-and-hold of the same bars."""
    if not benchmark:
        return []
    lines = ["", "## Benchmark", ""]
    if "error" in benchmark:
        return [*lines, f"Buy-and-hold could not be computed: {benchmark['error']}"]
    return [
        *lines,
        f"Buy-and-hold over the {benchmark['bars']:,} bars the study searched (`{benchmark['data']}`, "
        "same fee and slippage): "
        f"**{_percent(benchmark['buy_and_hold_return'])}**; the best trial's total return "
        f"{_percent(benchmark['best_total_return'])}, **{_percent(benchmark['excess_return'], sign=True)}** above it.",
    ]


def _profile_markdown(profile: dict[str, Any]) -> str:
    try:
        from engine.profile.report import ProfileReport

        text = ProfileReport.from_dict(profile).to_markdown(level=2)
    except Exception:  # a stored report of another version: show what we can
        text = "## Profile\n\n```json\n" + json.dumps(profile, indent=2, default=str)[:4000] + "\n```"
    return text.rstrip("\n")


def _cell(value: Any) -> str:
    return "–" if value is None else str(value)


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "–"
    from engine.optimize.progress import format_duration

    return format_duration(float(seconds))


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _copy(source: Path, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(path)


def _draw(charts: dict[str, Any], *, maximize: bool, objective: str, overfitting: Any) -> dict[str, str]:
    """The report's charts drawn from :func:`_chart_data` (``overfitting``: the report's section)."""
    return draw_charts(
        equity=charts["equity"],
        numbers=charts["numbers"],
        objectives=charts["objectives"],
        heatmap=charts["heatmap"],
        maximize=maximize,
        objective=objective,
        overfitting=overfitting,
    )


def write_report_dir(
    report: dict[str, Any], charts: dict[str, Any], directory: str | Path, *, drawn: dict[str, str] | None = None
) -> dict[str, Path]:
    """Write ``report.md``, ``report.json`` and the charts into ``directory`` (``drawn``: the charts
    drawn already, as :class:`TrialParts` holds them)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if drawn is None:
        drawn = _draw(charts, maximize=str(report.get("direction", "maximize")).lower() != "minimize",
                      objective=str(report.get("objective", "objective")), overfitting=report.get("overfitting"))
    paths = write_charts(directory, drawn)
    md, js = directory / "report.md", directory / "report.json"
    _write(md, render_full_markdown(report))
    _write(js, json.dumps(report, indent=2, default=str, allow_nan=False) + "\n")
    return {"md": md, "json": js, **paths}


async def write_run_report(
    db: str | Path | DatabaseUrl, name: str, root: str | Path, *, run_id: int | None = None,
    parts: TrialParts | None = None,
) -> dict[str, Path]:
    """The run's report directory under ``root`` (see the module docstring), plus the latest copies
    (``parts``: as :func:`build_full_report`)."""
    root = Path(root)
    report, charts = await build_full_report(db, name, run_id=run_id, parts=parts)
    runs = _runs(store_location(db), name)
    run = next((r for r in runs if r.id == run_id), None) if run_id is not None else None
    study_dir = named_path(root, name)
    directory = study_dir / run_dir_name(run)
    drawn = parts.drawn if parts is not None and charts is parts.charts else None  # (parts of this study)
    paths = write_report_dir(report, charts, directory, drawn=drawn)
    latest_md, latest_json = named_path(root, name, ".md"), named_path(root, name, ".json")
    # the latest copies: links inside point into the run's directory
    prefix = f"{study_dir.name}/{directory.name}/"
    markdown = render_full_markdown({**report, "charts": {k: prefix + v for k, v in report["charts"].items()}})
    _write(latest_md, markdown)
    _copy(paths["json"], latest_json)  # the same report: its JSON is not encoded twice
    link = study_dir / "latest"
    with contextlib.suppress(OSError):
        tmp = study_dir / ".latest.tmp"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(directory.name, tmp)
        tmp.replace(link)
    return {"dir": directory, **paths, "latest_md": latest_md, "latest_json": latest_json}
