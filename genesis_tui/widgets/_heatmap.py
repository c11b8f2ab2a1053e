"""A heatmap of the objective over two parameters, shaded between two theme colours."""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import RenderResult
from textual.geometry import Size
from textual.widget import Widget

from engine.telemetry import Heatmap
from genesis_tui.widgets._theme import theme_color


def _label(value: float) -> str:
    return f"{value:.4g}"


class HeatmapView(Widget):
    """Renders a :class:`~engine.telemetry.Heatmap`: rows are the y parameter, columns x."""

    DEFAULT_CSS = """
    HeatmapView {
        height: auto;
        min-height: 4;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._heatmap: Heatmap | None = None

    def set_heatmap(self, heatmap: Heatmap | None) -> None:
        if heatmap == self._heatmap:
            return
        self._heatmap = heatmap
        self.refresh(layout=True)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._heatmap.y_values) + 4 if self._heatmap else 1

    def render(self) -> RenderResult:
        heat = self._heatmap
        if heat is None or not heat.values:
            return Text("heatmap: waiting for trials", style="dim")
        low = theme_color(self, "heat-low", "panel")
        high = theme_color(self, "heat-high", "accent")
        finite = [v for row in heat.values for v in row if v is not None and math.isfinite(v)]
        lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
        span = (hi - lo) or 1.0
        label_w = max(len(_label(v)) for v in heat.y_values) if heat.y_values else 1
        avail = max(1, self.size.width - label_w - 1)
        cell = max(1, min(4, avail // max(1, len(heat.x_values))))
        text = Text()
        text.append(f"{heat.y_param} ↓ {heat.x_param} →\n", style="dim")
        text.append(f"{lo:.2f} ", style="dim")
        for step in range(8):
            text.append("  ", style=f"on {low.blend(high, step / 7).hex6}")
        text.append(f" {hi:.2f}\n", style="dim")
        best = max(finite) if finite else None
        for y_value, row in zip(reversed(heat.y_values), reversed(heat.values), strict=True):
            text.append(_label(y_value).rjust(label_w) + " ", style="dim")
            for value in row:
                if value is None or not math.isfinite(value):
                    text.append("·".center(cell), style="dim")
                    continue
                shade = low.blend(high, (value - lo) / span)
                mark = "◆".center(cell) if value == best else " " * cell
                text.append(mark, style=f"{shade.get_contrast_text(1.0).hex6} on {shade.hex6}")
            text.append("\n")
        first, last = _label(heat.x_values[0]), _label(heat.x_values[-1])
        width = cell * len(heat.x_values)
        axis = first + last.rjust(max(1, width - len(first)))
        text.append(" " * (label_w + 1) + axis, style="dim")
        return text
