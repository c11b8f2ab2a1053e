"""Report charts as SVG files, drawn by hand (no plotting dependency).

Three charts per report:

- ``equity.svg``: the equity curves of the best trials (from the stored
  top-N artifacts);
- ``convergence.svg``: every complete trial's objective by trial number (dots)
  and the best so far (a step line);
- ``heatmap.svg``: the best objective over the two numeric parameters with the
  most distinct values (cells left blank where nothing was tried).

The functions take plain numbers and return SVG text; :func:`write_charts`
writes the files. Long series are decimated per pixel column (min and max
kept), so a 200,000-bar equity curve still draws its drawdowns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

WIDTH, HEIGHT = 860, 420
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 76, 24, 44, 52
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
FONT = "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'"


def _nice_step(span: float, ticks: int = 6) -> float:
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _ticks(lo: float, hi: float, ticks: int = 6) -> list[float]:
    step = _nice_step(hi - lo, ticks)
    start = math.ceil(lo / step) * step
    out: list[float] = []
    value = start
    while value <= hi + step * 1e-9 and len(out) < 50:
        out.append(0.0 if abs(value) < step * 1e-9 else value)
        value += step
    return out


def _label(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e6 or magnitude < 1e-3:
        return f"{value:.2e}"
    if magnitude >= 100:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _bounds(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    array = np.asarray(values, dtype=np.float64)
    finite = array[np.isfinite(array)]
    if not finite.size:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    if lo == hi:
        pad = abs(lo) * 0.05 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.04
    return lo - pad, hi + pad


def decimate(values: Sequence[float] | np.ndarray, columns: int) -> list[tuple[int, float]]:
    """(index, value) pairs keeping each column's first, min and max (in order; ties: the first)."""
    array = np.asarray(values, dtype=np.float64)
    n = len(array)
    finite = np.isfinite(array)
    if n <= 2 * columns:
        return [(int(i), float(array[i])) for i in np.flatnonzero(finite)]
    # Vectorised over 100k-bar curves (a Python loop per value cost 0.5 s a report).
    per = n / columns
    starts = (np.arange(columns) * per).astype(np.int64)
    column = np.repeat(np.arange(columns), np.diff(np.append(starts, n)))
    lows = np.where(finite, array, np.inf)
    highs = np.where(finite, array, -np.inf)
    kept = []
    for hit in (finite, finite & (lows == np.minimum.reduceat(lows, starts)[column]),
                finite & (highs == np.maximum.reduceat(highs, starts)[column])):
        hits = np.flatnonzero(hit)
        first = np.full(columns, -1, dtype=np.int64)
        seen, at = np.unique(column[hits], return_index=True)
        first[seen] = hits[at]
        kept.append(first)
    rows = np.sort(np.stack(kept, axis=1), axis=1)
    out: list[tuple[int, float]] = []
    for row in rows[rows[:, 2] >= 0].tolist():  # a column with no finite value keeps nothing
        for j, i in enumerate(row):
            if i >= 0 and (j == 0 or i != row[j - 1]):
                out.append((i, float(array[i])))
    last = float(array[-1])
    if math.isfinite(last) and (not out or out[-1][0] != n - 1):
        out.append((n - 1, last))
    return out


class _Frame:
    """Plot-area geometry: data coordinates to SVG coordinates."""

    def __init__(self, x_lo: float, x_hi: float, y_lo: float, y_hi: float) -> None:
        self.x_lo, self.x_hi, self.y_lo, self.y_hi = x_lo, x_hi if x_hi > x_lo else x_lo + 1, y_lo, y_hi
        self.left, self.top = MARGIN_L, MARGIN_T
        self.width = WIDTH - MARGIN_L - MARGIN_R
        self.height = HEIGHT - MARGIN_T - MARGIN_B

    def x(self, value: float) -> float:
        return self.left + (value - self.x_lo) / (self.x_hi - self.x_lo) * self.width

    def y(self, value: float) -> float:
        return self.top + (1 - (value - self.y_lo) / (self.y_hi - self.y_lo)) * self.height

    def axes(self, x_label: str, y_label: str) -> list[str]:
        parts = [
            f"<rect x='{self.left}' y='{self.top}' width='{self.width}' height='{self.height}' fill='#fbfbfd' "
            "stroke='#c8c8d0'/>"
        ]
        for value in _ticks(self.y_lo, self.y_hi):
            y = self.y(value)
            parts.append(f"<line x1='{self.left}' x2='{self.left + self.width}' y1='{y:.1f}' y2='{y:.1f}' "
                         "stroke='#e4e4ea'/>")
            parts.append(f"<text x='{self.left - 6}' y='{y + 4:.1f}' text-anchor='end' font-size='11' "
                         f"fill='#444'>{_label(value)}</text>")
        for value in _ticks(self.x_lo, self.x_hi, 8):
            x = self.x(value)
            parts.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{self.top}' y2='{self.top + self.height}' "
                         "stroke='#eeeef2'/>")
            parts.append(f"<text x='{x:.1f}' y='{self.top + self.height + 16}' text-anchor='middle' "
                         f"font-size='11' fill='#444'>{_label(value)}</text>")
        parts.append(f"<text x='{self.left + self.width / 2:.0f}' y='{HEIGHT - 12}' text-anchor='middle' "
                     f"font-size='12' fill='#222'>{escape(x_label)}</text>")
        parts.append(f"<text transform='translate(16 {self.top + self.height / 2:.0f}) rotate(-90)' "
                     f"text-anchor='middle' font-size='12' fill='#222'>{escape(y_label)}</text>")
        return parts


def _document(title: str, body: list[str]) -> str:
    return "\n".join([
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT}' "
        f"viewBox='0 0 {WIDTH} {HEIGHT}' {FONT}>",
        f"<title>{escape(title)}</title>",
        f"<rect width='{WIDTH}' height='{HEIGHT}' fill='white'/>",
        f"<text x='{MARGIN_L}' y='26' font-size='15' font-weight='bold' fill='#111'>{escape(title)}</text>",
        *body,
        "</svg>",
        "",
    ])


def _empty(title: str, message: str) -> str:
    return _document(title, [
        f"<text x='{WIDTH / 2:.0f}' y='{HEIGHT / 2:.0f}' text-anchor='middle' font-size='14' "
        f"fill='#666'>{escape(message)}</text>"
    ])


def _legend(labels: Sequence[str]) -> list[str]:
    parts = []
    x = WIDTH - MARGIN_R - 8
    for i, label in reversed(list(enumerate(labels))):
        width = 22 + 7 * len(label)
        x -= width
        color = PALETTE[i % len(PALETTE)]
        parts.append(f"<line x1='{x}' x2='{x + 16}' y1='22' y2='22' stroke='{color}' stroke-width='3'/>")
        parts.append(f"<text x='{x + 20}' y='26' font-size='11' fill='#222'>{escape(label)}</text>")
    return parts


def equity_svg(
    curves: Sequence[tuple[str, Sequence[float] | np.ndarray]], *, title: str = "Equity of the best trials"
) -> str:
    """Equity curves (label, values by bar) on one chart."""
    curves = [(label, values) for label, values in curves if len(values)]
    if not curves:
        return _empty(title, "no stored equity curves (artifacts = \"none\", or no complete trial)")
    y_lo, y_hi = _bounds(np.concatenate([np.asarray(values, dtype=np.float64) for _, values in curves]))
    x_hi = max(len(values) for _, values in curves) - 1
    frame = _Frame(0, max(1, x_hi), y_lo, y_hi)
    body = frame.axes("bar", "equity")
    columns = frame.width
    for i, (_, values) in enumerate(reversed(curves)):
        color = PALETTE[(len(curves) - 1 - i) % len(PALETTE)]
        points = " ".join(f"{frame.x(j):.1f},{frame.y(v):.1f}" for j, v in decimate(values, columns))
        width = 2.2 if i == len(curves) - 1 else 1.3
        body.append(f"<polyline points='{points}' fill='none' stroke='{color}' stroke-width='{width}' "
                    "stroke-linejoin='round'/>")
    body += _legend([label for label, _ in curves])
    return _document(title, body)


def convergence_svg(
    numbers: Sequence[int],
    objectives: Sequence[float],
    *,
    maximize: bool = True,
    objective: str = "objective",
    title: str = "Convergence",
) -> str:
    """Each complete trial's objective by trial number, and the best so far."""
    pairs = sorted((int(n), float(v)) for n, v in zip(numbers, objectives, strict=True) if math.isfinite(v))
    if not pairs:
        return _empty(title, "no complete trial yet")
    y_lo, y_hi = _bounds([v for _, v in pairs])
    frame = _Frame(pairs[0][0], max(pairs[-1][0], pairs[0][0] + 1), y_lo, y_hi)
    body = frame.axes("trial number", objective)
    stride = max(1, len(pairs) // 4000)
    dots = "".join(
        f"M{frame.x(n):.1f},{frame.y(v):.1f}h0" for n, v in pairs[::stride]
    )
    body.append(f"<path d='{dots}' stroke='#9aa7c0' stroke-width='2.4' stroke-linecap='round' opacity='0.7'/>")
    best: float | None = None
    steps: list[str] = []
    for n, v in pairs:
        if best is None or (v > best if maximize else v < best):
            if best is not None:
                steps.append(f"{frame.x(n):.1f},{frame.y(best):.1f}")
            best = v
            steps.append(f"{frame.x(n):.1f},{frame.y(v):.1f}")
    assert best is not None
    steps.append(f"{frame.x(pairs[-1][0]):.1f},{frame.y(best):.1f}")
    body.append(f"<polyline points='{' '.join(steps)}' fill='none' stroke='{PALETTE[1]}' stroke-width='2.2'/>")
    body += _legend(["best so far"])
    return _document(title, body)


def _colour(fraction: float) -> str:
    """A perceptually even ramp (viridis-like) for 0..1."""
    stops = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))
    fraction = min(1.0, max(0.0, fraction)) * (len(stops) - 1)
    i = min(int(fraction), len(stops) - 2)
    t = fraction - i
    r, g, b = (round(a + (c - a) * t) for a, c in zip(stops[i], stops[i + 1], strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap_svg(heatmap: Any, *, objective: str = "objective", title: str = "Best objective by parameters") -> str:
    """A :class:`~engine.telemetry.Heatmap` (best value per cell) as coloured cells with a scale."""
    if heatmap is None:
        return _empty(title, "fewer than two numeric parameters with two or more tried values")
    xs, ys, grid = list(heatmap.x_values), list(heatmap.y_values), heatmap.values
    values = [v for row in grid for v in row if v is not None and math.isfinite(v)]
    if not values:
        return _empty(title, "no complete trial yet")
    lo, hi = min(values), max(values)
    left, top = MARGIN_L, MARGIN_T
    width, height = WIDTH - MARGIN_L - MARGIN_R - 90, HEIGHT - MARGIN_T - MARGIN_B
    cw, ch = width / len(xs), height / len(ys)
    body = []
    for yi, row in enumerate(grid):
        for xi, value in enumerate(row):
            x, y = left + xi * cw, top + (len(ys) - 1 - yi) * ch
            if value is None or not math.isfinite(value):
                fill = "#f1f1f4"
                tip = "not tried"
            else:
                fill = _colour((value - lo) / (hi - lo) if hi > lo else 0.5)
                tip = f"{heatmap.x_param}={_label(xs[xi])}, {heatmap.y_param}={_label(ys[yi])}: {_label(value)}"
            body.append(f"<rect x='{x:.1f}' y='{y:.1f}' width='{cw + 0.5:.1f}' height='{ch + 0.5:.1f}' "
                        f"fill='{fill}'><title>{escape(tip)}</title></rect>")
    for xi, value in enumerate(xs):
        if len(xs) <= 16 or xi % max(1, len(xs) // 12) == 0:
            body.append(f"<text x='{left + (xi + 0.5) * cw:.1f}' y='{top + height + 16}' text-anchor='middle' "
                        f"font-size='11' fill='#444'>{_label(value)}</text>")
    for yi, value in enumerate(ys):
        if len(ys) <= 16 or yi % max(1, len(ys) // 12) == 0:
            body.append(f"<text x='{left - 6}' y='{top + (len(ys) - 1 - yi + 0.5) * ch + 4:.1f}' "
                        f"text-anchor='end' font-size='11' fill='#444'>{_label(value)}</text>")
    body.append(f"<text x='{left + width / 2:.0f}' y='{HEIGHT - 12}' text-anchor='middle' font-size='12' "
                f"fill='#222'>{escape(heatmap.x_param)}</text>")
    body.append(f"<text transform='translate(16 {top + height / 2:.0f}) rotate(-90)' text-anchor='middle' "
                f"font-size='12' fill='#222'>{escape(heatmap.y_param)}</text>")
    scale_x = left + width + 30
    steps = 40
    for i in range(steps):
        y = top + (steps - 1 - i) * height / steps
        body.append(f"<rect x='{scale_x}' y='{y:.1f}' width='16' height='{height / steps + 0.5:.1f}' "
                    f"fill='{_colour(i / (steps - 1))}'/>")
    body.append(f"<text x='{scale_x + 20}' y='{top + 10}' font-size='11' fill='#222'>{_label(hi)}</text>")
    body.append(f"<text x='{scale_x + 20}' y='{top + height}' font-size='11' fill='#222'>{_label(lo)}</text>")
    body.append(f"<text x='{scale_x}' y='{top - 8}' font-size='11' fill='#222'>{escape(objective)}</text>")
    return _document(title, body)


def montecarlo_svg(section: Any, *, title: str = "Monte Carlo of the best trial's trades") -> str:
    """The fan of resampled equity paths (the ``overfitting.monte_carlo`` dict): 5-95% and 25-75% bands, median."""
    if not section:
        return _empty(title, "no stored trades to resample (artifacts = \"none\", or no complete trial)")
    fan = section["fan"]
    marks = [float(x) for x in fan["trades"]]
    bands = {p: [float(v) for v in fan[p]] for p in ("p5", "p25", "p50", "p75", "p95")}
    y_lo, y_hi = _bounds([v for values in bands.values() for v in values])
    frame = _Frame(marks[0], max(marks[-1], marks[0] + 1), y_lo, y_hi)
    body = frame.axes("trades", "equity (from 1)")
    for (low, high), opacity in ((("p5", "p95"), 0.22), (("p25", "p75"), 0.4)):
        upper = [f"{frame.x(x):.1f},{frame.y(v):.1f}" for x, v in zip(marks, bands[high], strict=True)]
        lower = [f"{frame.x(x):.1f},{frame.y(v):.1f}" for x, v in zip(marks, bands[low], strict=True)]
        body.append(f"<polygon points='{' '.join(upper + lower[::-1])}' fill='{PALETTE[0]}' opacity='{opacity}'/>")
    median = " ".join(f"{frame.x(x):.1f},{frame.y(v):.1f}" for x, v in zip(marks, bands["p50"], strict=True))
    body.append(f"<polyline points='{median}' fill='none' stroke='{PALETTE[0]}' stroke-width='2.2'/>")
    body += _legend([f"trial #{section['trial']}: median, 25-75%, 5-95% of {section['paths']} paths"])
    return _document(title, body)


def importance_svg(scores: Any, *, objective: str = "objective", title: str = "Parameter importance") -> str:
    """One horizontal bar per parameter: the share of the objective's variance it explains alone."""
    if not scores:
        return _empty(title, "no complete trial yet")
    items = list(scores.items())[:20]
    left, top = MARGIN_L + 60, MARGIN_T
    width, height = WIDTH - left - MARGIN_R - 50, HEIGHT - MARGIN_T - MARGIN_B
    bar = height / len(items)
    body = []
    for i, (name, value) in enumerate(items):
        y = top + i * bar
        length = max(0.0, min(1.0, float(value))) * width
        body.append(f"<rect x='{left}' y='{y + bar * 0.15:.1f}' width='{length:.1f}' height='{bar * 0.7:.1f}' "
                    f"fill='{PALETTE[i % len(PALETTE)]}'><title>{escape(name)}: {100 * float(value):.1f}%</title></rect>")
        body.append(f"<text x='{left - 6}' y='{y + bar / 2 + 4:.1f}' text-anchor='end' font-size='12' "
                    f"fill='#222'>{escape(name)}</text>")
        body.append(f"<text x='{left + length + 6:.1f}' y='{y + bar / 2 + 4:.1f}' font-size='11' "
                    f"fill='#444'>{100 * float(value):.1f}%</text>")
    body.append(f"<text x='{left + width / 2:.0f}' y='{HEIGHT - 12}' text-anchor='middle' font-size='12' "
                f"fill='#222'>share of the variance of {escape(objective)}</text>")
    return _document(title, body)


def draw_charts(
    *,
    equity: Sequence[tuple[str, Sequence[float] | np.ndarray]],
    numbers: Sequence[int],
    objectives: Sequence[float],
    heatmap: Any,
    maximize: bool = True,
    objective: str = "objective",
    overfitting: Any = None,
) -> dict[str, str]:
    """The SVG text of ``equity``, ``convergence``, ``heatmap`` and, given the report's ``overfitting``
    section, ``montecarlo`` and ``importance``."""
    charts = {
        "equity": equity_svg(equity),
        "convergence": convergence_svg(numbers, objectives, maximize=maximize, objective=objective),
        "heatmap": heatmap_svg(heatmap, objective=objective),
    }
    if overfitting is not None:
        charts["montecarlo"] = montecarlo_svg(overfitting.get("monte_carlo"))
        charts["importance"] = importance_svg(overfitting.get("importance"), objective=objective)
    return charts


def write_charts(directory: str | Path, charts: dict[str, str]) -> dict[str, Path]:
    """Write each of :func:`draw_charts`' ``charts`` into ``directory`` as ``<name>.svg``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, text in charts.items():
        path = directory / f"{name}.svg"
        tmp = path.with_suffix(".svg.tmp")
        tmp.write_text(text)
        tmp.replace(path)
        paths[name] = path
    return paths
