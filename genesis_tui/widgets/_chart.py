"""A line chart (textual-plotext) whose colours come from theme variables."""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.text import Text
from textual.app import RenderResult
from textual.color import Color
from textual_plotext import PlotextPlot

MAX_POINTS = 240


def thin(values: Sequence[float], limit: int = MAX_POINTS) -> tuple[list[int], list[float]]:
    """Every n-th point (always keeping the last) so a chart never plots more than ``limit``."""
    n = len(values)
    if n <= limit:
        return list(range(n)), [float(v) for v in values]
    step = n / limit
    xs = sorted({min(n - 1, int(i * step)) for i in range(limit)} | {n - 1})
    return xs, [float(values[i]) for i in xs]


class LineChart(PlotextPlot):
    """One or more series over their index.

    Plotting is pure Python and costs tens of milliseconds, so the chart redraws
    only when its data, size or theme changed, and takes new data at most once
    per ``min_interval_s`` (the latest data wins; stale data is never queued).
    """

    DEFAULT_CSS = """
    LineChart {
        height: 1fr;
        min-height: 6;
    }
    """

    def __init__(
        self,
        title: str = "",
        *,
        colors: Sequence[str] = ("chart-1", "chart-2", "chart-3"),
        y_label: str = "",
        empty: str = "no data yet",
        min_interval_s: float = 1.0,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.min_interval_s = min_interval_s
        self._pending: tuple[tuple[tuple[float, ...], ...], tuple[str, ...]] | None = None
        self._last_set = -1e9
        self._cache_key: object = None
        self._cache: RenderResult | None = None
        self._title = title
        self._colors = tuple(colors)
        self._y_label = y_label
        self._empty = empty
        self._series: tuple[tuple[float, ...], ...] = ()
        self._labels: tuple[str, ...] = ()

    def set_series(self, *series: Sequence[float], labels: Sequence[str] = ()) -> None:
        """Replace the plotted series (each a sequence of y values)."""
        data = tuple(tuple(s) for s in series)
        if data == self._series and tuple(labels) == self._labels:
            self._pending = None
            return
        now = time.monotonic()
        if now - self._last_set >= self.min_interval_s or not any(len(s) > 1 for s in self._series):
            self._apply(data, tuple(labels))
            return
        if self._pending is None:
            self.set_timer(self.min_interval_s - (now - self._last_set), self._apply_pending)
        self._pending = (data, tuple(labels))

    def _apply_pending(self) -> None:
        if self._pending is not None:
            data, labels = self._pending
            self._pending = None
            self._apply(data, labels)

    def _apply(self, data: tuple[tuple[float, ...], ...], labels: tuple[str, ...]) -> None:
        self._last_set = time.monotonic()
        self._series = data
        self._labels = labels
        self.refresh()

    def _theme_rgb(self, variable: str) -> tuple[int, int, int]:
        value = self.app.theme_variables.get(variable) or self.app.theme_variables["primary"]
        return Color.parse(value).rgb

    def render(self) -> RenderResult:
        key = (self.size, self._series, self._labels, self.app.theme)
        if key != self._cache_key or self._cache is None:
            self._cache = self._render_plot()
            self._cache_key = key
        return self._cache

    def _render_plot(self) -> RenderResult:
        if not any(len(s) > 1 for s in self._series):
            return Text(f"{self._title}\n{self._empty}" if self._title else self._empty, style="dim")
        plt = self.plt
        plt.clear_figure()
        plt.title(self._title)
        if self._y_label:
            plt.ylabel(self._y_label)
        for index, series in enumerate(self._series):
            if len(series) < 2:
                continue
            xs, ys = thin(series)
            label = self._labels[index] if index < len(self._labels) else None
            color = self._theme_rgb(self._colors[index % len(self._colors)])
            plt.plot(xs, ys, marker="braille", color=color, label=label)
        return super().render()
