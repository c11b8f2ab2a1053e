"""Where Genesis keeps its files: XDG data, config and cache directories."""

from __future__ import annotations

import os
from pathlib import Path

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
