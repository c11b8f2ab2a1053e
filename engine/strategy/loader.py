"""Loading strategy files by content: ``PATH.py:NAME`` specs and the user's strategies folder.

A file is imported from a copy of its text in ``<cache>/strategies/<sha256>/``
under a module name made from the hash. So numba's on-disk cache of the file's
``@njit(cache=True)`` functions is keyed by the content: an edited file is a
new folder (compiled afresh), an unchanged one loads its machine code. Workers
are sent a :class:`StrategySource` (path, text, hash), never a pickled object,
and call :func:`load_source` on it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

from engine.errors import StrategyError
from engine.paths import cache_dir, config_dir
from engine.strategy.core import StrategyDef, StrategyLoadError

MODULE_PREFIX = "genesis_strategy_"
_LOCK = threading.RLock()
_MODULES: dict[tuple[str, bool], ModuleType] = {}
_DEFS: dict[tuple[str, str], dict[str, StrategyDef]] = {}  # (hash, path) ->


@dataclass(frozen=True, slots=True)
class StrategySource:
    """A strategy file's text: ``path`` as the user named it (for messages and
    reports), ``text``, and ``hash`` (sha256 of the UTF-8 text, hex)."""

    path: str
    text: str
    hash: str

    @classmethod
    def of(cls, path: str | Path, text: str) -> StrategySource:
        return cls(str(path), text, hashlib.sha256(text.encode("utf-8")).hexdigest())

    @classmethod
    def read(cls, path: str | Path) -> StrategySource:
        """The file at ``path``; a one-line StrategyLoadError when it cannot be read."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise StrategyLoadError(f"strategy file {path}: not found") from None
        except (OSError, UnicodeDecodeError) as error:
            raise StrategyLoadError(f"strategy file {path}: cannot be read ({error})") from None
        return cls.of(path, text)

    @property
    def stem(self) -> str:
        stem = re.sub(r"\W", "_", Path(self.path).stem) or "strategies"
        return stem if stem[0].isalpha() or stem[0] == "_" else f"_{stem}"


def cached_copy(src: StrategySource) -> Path:
    """The content-addressed copy of ``src`` that is imported (written once)."""
    path = cache_dir() / "strategies" / src.hash / f"{src.stem}.py"
    try:
        if path.is_file() and path.read_text(encoding="utf-8") == src.text:
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(src.text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as error:
        raise StrategyLoadError(f"strategy file {src.path}: cannot write its cached copy {path} ({error})") from None
    return path


def load_source(src: StrategySource, *, jit: bool = True) -> ModuleType:
    """The module of ``src``, imported once per process and content.

    ``jit=False`` imports it again with numba's JIT disabled (every ``@njit``
    function stays plain Python): what a typing error is re-run with to show a
    Python traceback at the user's line.
    """
    with _LOCK:
        module = _MODULES.get((src.hash, jit))
        if module is not None:
            return module
        path = cached_copy(src)
        module_name = f"{MODULE_PREFIX}{src.hash[:20]}{'' if jit else '_nojit'}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            with _jit_disabled() if not jit else contextlib.nullcontext():
                spec.loader.exec_module(module)
        except BaseException as error:
            sys.modules.pop(module_name, None)
            if not isinstance(error, Exception):
                raise
            raise StrategyLoadError(_import_message(src, path, error)) from None
        _MODULES[(src.hash, jit)] = module
        return module


@contextlib.contextmanager
def _jit_disabled() -> Iterator[None]:
    import numba

    # numba reads the flag when a function is decorated, so it only needs to
    # be set while the module executes.
    config: Any = numba.config  # its settings are set at run time from the environment (no stubs)
    before = config.DISABLE_JIT
    config.DISABLE_JIT = True
    try:
        yield
    finally:
        config.DISABLE_JIT = before


def _import_message(src: StrategySource, copy: Path, error: Exception) -> str:
    if isinstance(error, SyntaxError) and error.filename == str(copy):
        return f"{src.path}:{error.lineno}: {type(error).__name__}: {error.msg}"
    message = str(error).replace(str(copy), src.path)
    if isinstance(error, StrategyError):
        return message if message.startswith(src.path) else f"{src.path}: {message}"
    line = user_line(error.__traceback__, str(copy))
    return f"{src.path}:{line}: cannot be imported: {type(error).__name__}: {message}"


def user_line(tb: TracebackType | None, filename: str) -> int:
    """The line of the innermost traceback frame in ``filename`` (0: none)."""
    line = 0
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def strategies_in(src: StrategySource) -> dict[str, StrategyDef]:
    """Every strategy defined in ``src`` (in file order), by name."""
    with _LOCK:
        found = _DEFS.get((src.hash, src.path))
        if found is not None:
            return found
        module = load_source(src)
        found = {}
        for value in vars(module).values():
            if isinstance(value, StrategyDef) and value.file == module.__file__:
                found[value.name] = replace(value, file=src.path, source=src)
        _DEFS[(src.hash, src.path)] = found
        return found


def load_strategy(src: StrategySource, name: str) -> StrategyDef:
    """Strategy ``name`` of ``src``; a one-line error naming the ones it defines."""
    found = strategies_in(src)
    if name not in found:
        raise StrategyError(f"{src.path}: no strategy named {name!r} (defined: {', '.join(found) or 'none'})")
    return found[name]


def without_jit(record: StrategyDef) -> StrategyDef | None:
    """``record`` from its file imported with numba's JIT disabled (None: not from a file)."""
    if record.source is None:
        return None
    module = load_source(record.source, jit=False)
    for value in vars(module).values():
        if isinstance(value, StrategyDef) and value.name == record.name and value.file == module.__file__:
            return replace(value, file=record.file, source=record.source)
    return None


def is_spec(text: str) -> bool:
    """Whether ``text`` names a file: ``PATH.py:NAME`` or ``PATH.py``."""
    path, sep, _ = text.rpartition(":")
    return text.endswith(".py") or bool(sep and path.endswith(".py"))


def load_spec(spec: str, base: str | Path | None = None) -> StrategyDef:
    """The strategy ``PATH.py:NAME`` (``PATH`` relative to ``base`` when given and relative)."""
    path, sep, name = spec.rpartition(":")
    if not sep or not path.endswith(".py"):
        path, name = spec, ""
    file = Path(path).expanduser()
    if base is not None and not file.is_absolute():
        file = Path(base) / file
    src = StrategySource.read(file)
    if not name:
        found = strategies_in(src)
        if len(found) == 1:
            return next(iter(found.values()))
        raise StrategyError(f"{spec}: name the strategy as {path}:NAME (defined: {', '.join(found) or 'none'})")
    return load_strategy(src, name)


def strategies_dir() -> Path:
    """``$XDG_CONFIG_HOME/genesis/strategies``: every ``*.py`` there is found by name."""
    return config_dir() / "strategies"


def user_strategies() -> dict[str, StrategyDef]:
    """Every strategy in the strategies folder by name (files in name order).

    A file that cannot be imported raises its one-line error; a name defined in
    two files is an error naming both.
    """
    folder = strategies_dir()
    found: dict[str, StrategyDef] = {}
    if not folder.is_dir():
        return found
    for file in sorted(folder.glob("*.py")):
        for name, record in strategies_in(StrategySource.read(file)).items():
            if name in found:
                raise StrategyError(f"strategy {name!r} is defined in both {found[name].file} and {file}")
            found[name] = record
    return found
