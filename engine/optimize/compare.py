"""Studies side by side (``genesis compare``): best and robust-best trials, validation,
overfitting (PBO, importance), objective distribution, counts.

Built from the store alone, like the report: each study's column is its
:func:`~engine.optimize.report.build_report` cut down to what compares, plus
the quantiles of its objective over every complete trial.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.errors import InputError, StoreError
from engine.optimize.report import build_report
from engine.store.factory import open_study_store
from engine.store.protocol import StudyStore
from engine.store.url import DatabaseUrl
from engine.telemetry import StudyComparison

#: The quantiles of the objective each column shows (name -> q).
QUANTILES = (("p05", 0.05), ("p25", 0.25), ("p50", 0.50), ("p75", 0.75), ("p95", 0.95))


def quantile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``ordered`` (sorted, not empty), linear between the closest ranks."""
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def distribution(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """Count, mean, min, the :data:`QUANTILES` and max of the finite ``values``."""
    ordered = sorted(v for v in values if v is not None and math.isfinite(v))
    if not ordered:
        return {"count": 0, "mean": None, "min": None, **{name: None for name, _ in QUANTILES}, "max": None}
    return {
        "count": len(ordered),
        "mean": math.fsum(ordered) / len(ordered),
        "min": ordered[0],
        **{name: quantile(ordered, q) for name, q in QUANTILES},
        "max": ordered[-1],
    }


def _table(value: object) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (a stored report from an older version)."""
    return value if isinstance(value, dict) else {}


def _validation(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    """The validation figures that compare across studies (hold-out, walk-forward, deflated Sharpe)."""
    if not raw:
        return None
    holdout = _table(raw.get("holdout"))
    checks = holdout.get("trials")
    first = _table(checks[0]) if isinstance(checks, list) and checks else {}
    walk = _table(raw.get("walk_forward"))
    dsr = _table(raw.get("deflated_sharpe"))
    return {
        "best_in_sample": first.get("objective_in"),
        "best_out_of_sample": first.get("objective_out"),
        "mean_in_sample": holdout.get("mean_in"),
        "mean_out_of_sample": holdout.get("mean_out"),
        "retention": holdout.get("retention"),
        "walk_forward_folds": len(walk.get("folds") or []),
        "walk_forward_efficiency": walk.get("efficiency"),
        "deflated_sharpe": dsr.get("dsr"),
    }


async def study_column(store: StudyStore, name: str) -> dict[str, Any]:
    """One study's column of the comparison."""
    report = await build_report(store, name)
    study = await store.require_study(name)
    objective = str(report.get("objective") or "sharpe")
    values = await store.metric_values(study.id, objective)
    best = report.get("best")
    return {
        "study": report["study"],
        "state": report["state"],
        "strategy": report.get("strategy"),
        "data": report.get("data"),
        "sampler": report.get("sampler"),
        "objective": objective,
        "direction": report.get("direction", "maximize"),
        "trials": report["trials"],
        "counts": report["counts"],
        "best": None if best is None else {
            "number": best["number"], "objective": best["objective"], "params": best["params"],
            "metrics": best["metrics"],
        },
        "validation": _validation(report.get("validation")),
        "overfitting": _overfitting(report.get("overfitting")),
        "objective_distribution": distribution(values),
    }


def _overfitting(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    """The figures of "is the best trial real?" that compare across studies."""
    if not raw:
        return None
    stability = _table(raw.get("stability"))
    robust = _table(stability.get("robust_best"))
    importance = _table(raw.get("importance"))
    ranked = sorted(((v, k) for k, v in importance.items() if isinstance(v, int | float)), reverse=True)
    carlo = _table(raw.get("monte_carlo"))
    drawdown = _table(carlo.get("max_drawdown"))
    return {
        "pbo": raw.get("pbo"),
        "blocks": raw.get("blocks"),
        "prob_oos_loss": raw.get("prob_oos_loss"),
        "robust_best": None if not robust else {
            "number": robust.get("number"), "objective": robust.get("objective"),
            "smoothed": robust.get("smoothed"), "params": robust.get("params") or {},
        },
        "importance": {k: v for v, k in ranked},
        "mc_drawdown_p95": drawdown.get("p95"),
    }


async def build_comparison(store: StudyStore, names: Sequence[str]) -> dict[str, Any]:
    """The comparison of studies ``names`` (at least two, each once) in ``store``."""
    if len(names) < 2:
        raise InputError("compare: name at least two studies")
    repeated = sorted({n for n in names if list(names).count(n) > 1})
    if repeated:
        raise InputError(f"compare: study {repeated[0]!r} named twice")
    columns = [await study_column(store, name) for name in names]
    objectives = sorted({(c["objective"], c["direction"]) for c in columns})
    notes = []
    if len(objectives) > 1:
        notes.append(
            "the studies optimise different objectives ("
            + ", ".join(f"{direction} {objective}" for objective, direction in objectives)
            + "): their best values and distributions do not compare directly"
        )
    return {"studies": columns, "notes": notes}


async def comparison_from_db(db: str | Path | DatabaseUrl, names: Sequence[str]) -> dict[str, Any]:
    """Open ``db`` read-only and compare studies ``names``."""
    store = await open_study_store(db, readonly=True)
    try:
        return await build_comparison(store, names)
    finally:
        await store.close()


async def study_comparison(db: str | Path | DatabaseUrl, names: Sequence[str]) -> StudyComparison:
    """The comparison as the console's record (the rows ``genesis compare`` prints);
    a store that cannot be read or a study it does not hold is bad input."""
    try:
        comparison = await comparison_from_db(db, names)
    except StoreError as error:
        raise InputError(str(error)) from None
    return StudyComparison(
        studies=tuple(c["study"] for c in comparison["studies"]),
        rows=tuple((label, tuple(cells)) for label, cells in comparison_rows(comparison)),
        notes=tuple(comparison["notes"]),
    )


# ------------------------------------------------------------------ text
def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def _fraction(value: Any) -> str:
    """A return or drawdown (a fraction) as a percentage."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return f"{value * 100:.2f}%"
    return _fmt(value)


def comparison_rows(comparison: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(label, one cell per study) rows: what the Markdown and text tables show."""
    columns = comparison["studies"]

    def row(label: str, get: Any, fmt: Any = _fmt) -> tuple[str, list[str]]:
        return label, [fmt(get(c)) for c in columns]

    def val(key: str) -> Any:
        return lambda c: (c["validation"] or {}).get(key)

    rows = [
        row("state", lambda c: c["state"]),
        row("strategy", lambda c: c["strategy"]),
        row("data", lambda c: c["data"]),
        row("sampler", lambda c: c["sampler"]),
        row("objective", lambda c: f"{c['direction']} {c['objective']}"),
        row("trials", lambda c: c["trials"]),
        row("complete", lambda c: c["counts"].get("complete", 0)),
        row("failed", lambda c: c["counts"].get("failed", 0)),
        row("pruned", lambda c: c["counts"].get("pruned", 0)),
        row("best trial", lambda c: None if c["best"] is None else f"#{c['best']['number']}"),
        row("best value", lambda c: None if c["best"] is None else c["best"]["objective"]),
        row("best params", lambda c: None if c["best"] is None else
            ", ".join(f"{k}={_fmt(v)}" for k, v in c["best"]["params"].items())),
    ]
    metric_names = [m for m in ("total_return", "max_drawdown", "trades")
                    if any(c["best"] and m in (c["best"]["metrics"] or {}) for c in columns)]
    rows += [row(f"best {m}", lambda c, m=m: None if c["best"] is None else (c["best"]["metrics"] or {}).get(m),
                 _fraction if m != "trades" else _fmt)
             for m in metric_names]
    if any(c.get("overfitting") for c in columns):
        def over(key: str) -> Any:
            return lambda c: (c.get("overfitting") or {}).get(key)

        def robust(c: dict[str, Any]) -> dict[str, Any]:
            return (c.get("overfitting") or {}).get("robust_best") or {}

        def top(c: dict[str, Any]) -> str | None:
            ranked = list(((c.get("overfitting") or {}).get("importance") or {}).items())[:3]
            return ", ".join(f"{k} {v * 100:.0f}%" for k, v in ranked) or None

        rows += [
            row("P(overfit) (PBO)", over("pbo"), _fraction),
            row("P(loss out of sample)", over("prob_oos_loss"), _fraction),
            row("robust best trial", lambda c: f"#{robust(c)['number']}" if robust(c).get("number") is not None
                else None),
            row("robust best value", lambda c: robust(c).get("objective")),
            row("robust best params", lambda c: ", ".join(f"{k}={_fmt(v)}" for k, v in robust(c)["params"].items())
                if robust(c).get("params") else None),
            row("importance (top 3)", top),
            row("MC max drawdown p95", over("mc_drawdown_p95"), _fraction),
        ]
    if any(c["validation"] for c in columns):
        rows += [
            row("out-of-sample (best)", val("best_out_of_sample")),
            row("in-sample (best)", val("best_in_sample")),
            row("retention", val("retention")),
            row("walk-forward folds", val("walk_forward_folds")),
            row("walk-forward efficiency", val("walk_forward_efficiency")),
            row("deflated Sharpe", val("deflated_sharpe")),
        ]
    for name in ("count", "mean", "min", *(q for q, _ in QUANTILES), "max"):
        rows.append(row(f"objective {name}", lambda c, name=name: c["objective_distribution"][name]))
    return rows


def render_markdown(comparison: dict[str, Any]) -> str:
    """The comparison as a Markdown table (one column per study)."""
    names = [c["study"] for c in comparison["studies"]]
    lines = ["# Studies compared", "", "| | " + " | ".join(f"`{n}`" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for label, cells in comparison_rows(comparison):
        lines.append(f"| {label} | " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    if comparison["notes"]:
        lines += [""] + [f"Note: {note}." for note in comparison["notes"]]
    return "\n".join(lines) + "\n"


def render_text(comparison: dict[str, Any]) -> str:
    """The comparison as a plain aligned table for a terminal."""
    names = [c["study"] for c in comparison["studies"]]
    rows = [("", names), *comparison_rows(comparison)]
    label_w = max(len(label) for label, _ in rows)
    widths = [max(len(cells[i]) for _, cells in rows) for i in range(len(names))]
    lines = ["  ".join([label.ljust(label_w), *(cell.ljust(w) for cell, w in zip(cells, widths, strict=True))]).rstrip()
             for label, cells in rows]
    lines += [f"note: {note}" for note in comparison["notes"]]
    return "\n".join(lines) + "\n"
