"""Console themes: TOML files turned into Textual themes, and the remembered choice.

Each ``*.toml`` file holds one theme (the keys of :class:`ThemeFile`). The
bundled themes come from ``themes/`` next to the package (a source checkout) or
``<prefix>/share/genesis/themes`` (where a wheel installs them); the user's own from
``config_dir()/themes``, where a file may replace a bundled theme of the same
name. A file that does not parse (not UTF-8, too large, nested too deep, a bad
key or colour) is skipped and reported, never fatal: every file is read through
``engine.config.read_text``, the one capped reader.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import msgspec
from textual.color import Color, ColorParseError
from textual.theme import Theme

from engine.config import decode, load_toml, read_text
from engine.errors import ConfigError, quoted
from engine.paths import config_dir

DEFAULT_THEME = "genesis-dark"
STATE_FILE = "console-state.json"
STATE_FILE_MAX_BYTES = 64 * 1024

#: Our own theme variables (CSS ``$chart-1`` ...), with fallbacks for themes that lack them.
THEME_VARIABLE_DEFAULTS = {
    "chart-1": "#4FA3E0",
    "chart-2": "#F0A040",
    "chart-3": "#5CC08A",
    "heat-low": "#1F2833",
    "heat-high": "#F0A040",
}


class ThemeFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The keys of a theme file."""

    name: str
    primary: str
    dark: bool = True
    secondary: str | None = None
    accent: str | None = None
    warning: str | None = None
    error: str | None = None
    success: str | None = None
    foreground: str | None = None
    background: str | None = None
    surface: str | None = None
    panel: str | None = None
    boost: str | None = None
    luminosity_spread: float = 0.15
    text_alpha: float = 0.95
    variables: dict[str, str] = {}


@dataclass(frozen=True, slots=True)
class LoadedThemes:
    """The themes found and the files that were skipped (one line each)."""

    themes: tuple[Theme, ...]
    problems: tuple[str, ...]


def bundled_theme_dirs() -> list[Path]:
    """Where the bundled themes may live: the source tree (a checkout or an editable
    install), then ``<prefix>/share/genesis/themes`` where a wheel installs them."""
    package = Path(__file__).resolve().parent
    return [package.parent / "themes", Path(sys.prefix) / "share" / "genesis" / "themes"]


def user_theme_dir() -> Path:
    """The user's own themes: ``$XDG_CONFIG_HOME/genesis/themes``."""
    return config_dir() / "themes"


def load_theme_file(path: Path) -> Theme:
    """Parse one theme file; raises a one-line ``ConfigError`` naming the file and key."""
    spec = decode(load_toml(path), ThemeFile, str(path))
    colours = {
        key: getattr(spec, key)
        for key in ("primary", "secondary", "accent", "warning", "error", "success",
                    "foreground", "background", "surface", "panel", "boost")
    }
    for key, value in [*colours.items(), *spec.variables.items()]:
        if value is None:
            continue
        try:
            Color.parse(value)
        except ColorParseError:
            raise ConfigError(f"{path}: {key}: expected a colour such as '#4FA3E0', got {quoted(value)}") from None
    return Theme(
        name=spec.name,
        dark=spec.dark,
        luminosity_spread=spec.luminosity_spread,
        text_alpha=spec.text_alpha,
        variables={**THEME_VARIABLE_DEFAULTS, **spec.variables},
        **colours,
    )


def load_themes(directories: list[Path] | None = None) -> LoadedThemes:
    """Every theme in the bundled and user directories (later files win on a name clash)."""
    dirs = directories if directories is not None else [*bundled_theme_dirs(), user_theme_dir()]
    themes: dict[str, Theme] = {}
    problems: list[str] = []
    seen: set[Path] = set()
    for directory in dirs:
        if not directory.is_dir() or directory.resolve() in seen:
            continue
        seen.add(directory.resolve())
        for path in sorted(directory.glob("*.toml")):
            try:
                theme = load_theme_file(path)
            except ConfigError as error:
                problems.append(f"theme skipped: {error}")
                continue
            themes[theme.name] = theme
    return LoadedThemes(tuple(themes.values()), tuple(problems))


def _state_path() -> Path:
    return config_dir() / STATE_FILE


def _read_state(path: Path) -> object:
    """The state file's JSON (capped like every file read), or None when it cannot be used."""
    try:
        return json.loads(read_text(path, cap=STATE_FILE_MAX_BYTES))
    except (ConfigError, ValueError, RecursionError):
        return None


def remembered_theme() -> str | None:
    """The theme chosen last time, if any was remembered."""
    state = _read_state(_state_path())
    value = state.get("theme") if isinstance(state, dict) else None
    return value if isinstance(value, str) else None


def remember_theme(name: str) -> None:
    """Remember ``name`` for the next start (written atomically; errors are not fatal)."""
    path = _state_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        state = _read_state(path)
        if not isinstance(state, dict):
            state = {}
        state["theme"] = name
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(path)
    except OSError:
        pass
