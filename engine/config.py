"""The global config file, ``$XDG_CONFIG_HOME/genesis/config.toml``.

Each area owns one table and decodes it into its own frozen ``msgspec.Struct``
(with ``forbid_unknown_fields=True``) through :func:`config_section`; a missing
file or table gives the struct's defaults, an invalid one a ``ConfigError``
that names the file and the key. ``GENESIS_CONFIG`` points at another file.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from engine.errors import ConfigError
from engine.paths import config_dir

T = TypeVar("T")


def config_path() -> Path:
    """The config file in effect (it need not exist)."""
    override = os.environ.get("GENESIS_CONFIG")
    return Path(override) if override else config_dir() / "config.toml"


def load_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, turning I/O and syntax errors into one-line ``ConfigError``s."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None


def decode(raw: object, struct: type[T], where: str) -> T:
    """Decode ``raw`` into ``struct``; errors name ``where`` (file and table) and the key path."""
    try:
        return msgspec.convert(raw, struct, strict=True)
    except msgspec.ValidationError as error:
        raise ConfigError(describe_validation_error(error, where)) from None


def describe_validation_error(error: msgspec.ValidationError, where: str) -> str:
    """One line naming ``where``, the dotted key path and what was expected.

    msgspec says "Expected `int`, got `str` - at `$.search.trials`"; this turns
    it into "study.toml: search.trials: expected `int`, got `str`".
    """
    message = str(error)
    text, key = message, ""
    if " - at `$" in message:
        text, _, path = message.rpartition(" - at `$")
        key = path.rstrip("`").lstrip(".")
    unknown = "Object contains unknown field `"
    if text.startswith(unknown):
        field = text[len(unknown):].rstrip("`")
        key = f"{key}.{field}" if key else field
        text = "unknown key"
    elif text:
        text = text[0].lower() + text[1:]
    return f"{where}: {key}: {text}" if key else f"{where}: {text}"


def config_section(name: str, struct: type[T]) -> T:
    """Table ``[name]`` of the global config decoded into ``struct`` (defaults if absent)."""
    path = config_path()
    raw = load_toml(path) if path.exists() else {}
    return decode(raw.get(name, {}), struct, f"{path}: [{name}]")
