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
    """Renders a :class:`~engine.telemetry.Heatmap`: rows are the y parameter, columns x.

    With a smoothed surface, every cell is shaded by it (untried cells
    interpolated), sampled cells carry a dot and the best one a diamond.
    """

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
        surface = heat.smoothed
        shaded = [v for row in surface for v in row] if surface else finite
        lo, hi = (min(shaded), max(shaded)) if shaded else (0.0, 1.0)
        span = (hi - lo) or 1.0
        label_w = max(len(_label(v)) for v in heat.y_values) if heat.y_values else 1
        avail = max(1, self.size.width - label_w - 1)
        cell = max(1, min(4, avail // max(1, len(heat.x_values))))
        text = Text()
        text.append(f"{heat.y_param} ↓ {heat.x_param} →" + ("  smoothed · sampled" if surface else "") + "\n", style="dim")
        text.append(f"{lo:.2f} ", style="dim")
        for step in range(8):
            text.append("  ", style=f"on {low.blend(high, step / 7).hex6}")
        text.append(f" {hi:.2f}\n", style="dim")
        best = max(finite) if finite else None
        rows = len(heat.y_values)
        for y_index in reversed(range(rows)):
            text.append(_label(heat.y_values[y_index]).rjust(label_w) + " ", style="dim")
            for x_index, value in enumerate(heat.values[y_index]):
                sampled = value is not None and math.isfinite(value)
                if surface is None and not sampled:
                    text.append("·".center(cell), style="dim")
                    continue
                shown = surface[y_index][x_index] if surface is not None else value
                assert shown is not None
                shade = low.blend(high, (shown - lo) / span)
                if sampled and value == best:
                    mark = "◆".center(cell)
                elif sampled and surface is not None:
                    mark = "•".center(cell)
                else:
                    mark = " " * cell
                text.append(mark, style=f"{shade.get_contrast_text(1.0).hex6} on {shade.hex6}")
            text.append("\n")
        first, last = _label(heat.x_values[0]), _label(heat.x_values[-1])
        width = cell * len(heat.x_values)
        axis = first + last.rjust(max(1, width - len(first)))
        text.append(" " * (label_w + 1) + axis, style="dim")
        return text
