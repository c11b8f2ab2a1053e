"""Colours for widgets that draw their own strips: from the app's theme variables only."""

from __future__ import annotations

from textual.color import Color
from textual.widget import Widget


def theme_color(widget: Widget, name: str, fallback: str = "primary") -> Color:
    """The theme variable ``name`` (``fallback``'s colour where the theme does not set it)."""
    variables = widget.app.theme_variables
    return Color.parse(variables.get(name) or variables[fallback])
