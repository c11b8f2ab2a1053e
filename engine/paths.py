"""Where Genesis keeps its files: XDG data, config and cache directories."""

from __future__ import annotations

import os
import re
from pathlib import Path

from engine.errors import ConfigError, quoted

APP = "genesis"


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable)
    base = Path(value) if value else Path.home() / fallback
    return base / APP


def data_dir() -> Path:
    """``$XDG_DATA_HOME/genesis`` (default ``~/.local/share/genesis``): stores, recordings."""
    return _xdg("XDG_DATA_HOME", ".local/share")


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/genesis`` (default ``~/.config/genesis``): config.toml, user themes."""
    return _xdg("XDG_CONFIG_HOME", ".config")


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/genesis`` (default ``~/.cache/genesis``): market-data cache."""
    return _xdg("XDG_CACHE_HOME", ".cache")


def default_store_path() -> Path:
    """The SQLite store used when no ``--db`` is given."""
    return data_dir() / "genesis.db"


# -- names that become file and folder names --------------------------------

NAME_RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 100 characters"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# Stored names may also carry the ``@<time>`` that ``--rerun`` gives an archived study.
_STORED_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:-]{0,139}")


def check_name(name: str, where: str) -> str:
    """A new study's name, refused (one line naming ``where``) unless it follows :data:`NAME_RULE`."""
    if not _NAME.fullmatch(name):
        raise ConfigError(f"{where}: {quoted(name)} is not a valid study name ({NAME_RULE})")
    return name


def check_stored_name(name: str, where: str = "NAME") -> str:
    """A name to look up in a store: a study name, or an archived one (``name@2026-11-22T03:51:09Z``)."""
    if not _STORED_NAME.fullmatch(name):
        raise ConfigError(f"{where}: {quoted(name)} is not a study name ({NAME_RULE}, plus '@' and ':' when archived)")
    return name


def named_path(root: str | Path, name: str, suffix: str = "") -> Path:
    """``root/<name><suffix>``: the one way a study's name becomes a path; it never leaves ``root``."""
    check_stored_name(name, "study name")
    component = name.replace(":", "") + suffix  # archived names' times, without the colons
    path = Path(root) / component
    if path.parent != Path(root) or component in (".", ".."):
        raise ConfigError(f"study name {quoted(name)}: would leave {root}")
    return path
