"""The global config file, ``$XDG_CONFIG_HOME/genesis/config.toml``.

Each area owns one table and decodes it into its own frozen ``msgspec.Struct``
(with ``forbid_unknown_fields=True``) through :func:`config_section`; a missing
file or table gives the struct's defaults, an invalid one a ``ConfigError``
that names the file and the key. ``GENESIS_CONFIG`` points at another file.

Every text file Genesis reads (study files, the config, themes, alert rules)
goes through :func:`read_text`: at most a capped number of bytes is read (a
symlink to ``/dev/zero`` is refused, not read forever), and a file that is not
UTF-8 is bad input naming the file and the line. :func:`parse_toml` refuses
syntax errors, tables nested deeper than :data:`MAX_TOML_DEPTH` and non-finite
numbers (``nan``, ``inf``), naming the key.
"""

from __future__ import annotations

import math
import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from engine.errors import QUOTE_LIMIT, ConfigError, InputError
from engine.paths import config_dir

if TYPE_CHECKING:
    import msgspec

T = TypeVar("T")

#: The most a study, config or theme file may hold (far above any real one).
MAX_TEXT_FILE_BYTES = 1 << 20
#: The deepest nesting of tables and arrays a TOML file may have.
MAX_TOML_DEPTH = 32


def config_path() -> Path:
    """The config file in effect (it need not exist)."""
    override = os.environ.get("GENESIS_CONFIG")
    return Path(override) if override else config_dir() / "config.toml"


def read_capped(path: Path, cap: int, error: type[InputError] = ConfigError) -> bytes:
    """The bytes of ``path``, refused (as ``error``) when there are more than ``cap``.

    Reads at most ``cap + 1`` bytes, so a device or a file growing while read
    (``/dev/zero``) is refused like a large file: never stat-then-read.
    """
    try:
        with path.open("rb") as handle:
            data = handle.read(cap + 1)
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except IsADirectoryError:
        raise error(f"{path}: cannot read: it is a directory") from None
    except OSError as failure:
        raise error(f"{path}: cannot read: {failure.strerror or failure}") from None
    if len(data) > cap:
        raise error(f"{path}: larger than {cap} bytes, the limit for this file; refused")
    return data


def read_text(path: Path, *, cap: int = MAX_TEXT_FILE_BYTES, error: type[InputError] = ConfigError) -> str:
    """``path`` as UTF-8 text, read through :func:`read_capped`; bytes that are not
    UTF-8 are bad input naming the file and the line."""
    data = read_capped(path, cap, error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as failure:
        line = data[: failure.start].count(b"\n") + 1
        raise error(
            f"{path}: line {line}: not UTF-8 text (byte 0x{data[failure.start]:02x}); expected a UTF-8 text file"
        ) from None


def parse_toml(text: str, where: str) -> dict[str, Any]:
    """TOML text as a dict; syntax errors, deep nesting and nan/inf are one-line ``ConfigError``s."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as failure:
        raise ConfigError(f"{where}: invalid TOML: {failure}") from None
    except RecursionError:
        raise ConfigError(f"{where}: tables or arrays nested deeper than {MAX_TOML_DEPTH} levels") from None
    _check_values(raw, where)
    return raw


def _check_values(raw: dict[str, Any], where: str) -> None:
    """Refuse nesting deeper than ``MAX_TOML_DEPTH`` and non-finite floats, naming the key."""
    pending: list[tuple[str, object, int]] = [(key, value, 1) for key, value in raw.items()]
    while pending:
        key, value, depth = pending.pop()
        shown = key if len(key) <= QUOTE_LIMIT else key[:QUOTE_LIMIT] + "..."
        if depth > MAX_TOML_DEPTH:
            raise ConfigError(f"{where}: {shown}: nested deeper than {MAX_TOML_DEPTH} levels")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}: {shown}: expected a finite number, got {value}")
        if isinstance(value, dict):
            pending.extend((f"{key}.{inner}", item, depth + 1) for inner, item in value.items())
        elif isinstance(value, list):
            pending.extend((f"{key}[{index}]", item, depth + 1) for index, item in enumerate(value))


def load_toml(path: Path) -> dict[str, Any]:
    """Read (capped) and parse a TOML file; every problem is a one-line ``ConfigError``."""
    return parse_toml(read_text(path), str(path))


def decode(raw: object, struct: type[T], where: str) -> T:
    """Decode ``raw`` into ``struct``; errors name ``where`` (file and table) and the key path."""
    import msgspec  # (here: ``genesis run`` peeks at a study through read_text before its heavy imports)

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
