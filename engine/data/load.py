"""``engine.data.load(spec)`` and ``load_basket(specs)``: one entry point for every market-data source."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from engine.data.bars import Bars
from engine.data.spec import FILE_SUFFIXES, DataSpec, parse_spec
from engine.errors import DataError
from engine.load_progress import ProgressCallback
from engine.profile import profiler

if TYPE_CHECKING:
    from engine.data.basket import Basket

#: Files or specs loaded at the same time (file parsing and cache reads release the GIL often enough).
LOAD_CONCURRENCY = 4

_T = TypeVar("_T")
_R = TypeVar("_R")


def load(
    spec: str | os.PathLike[str], *, strict: bool = False, progress: ProgressCallback | None = None
) -> Bars:
    """Load validated bars for a data spec naming one symbol.

    A spec naming several symbols (a folder, ``symbols=N``, ``COIN+COIN``) is
    an error here: :func:`load_basket` loads it.

    ``synthetic:bars=N,seed=S[,timeframe=1m]...``, ``csv:PATH[,key=value]...``,
    ``parquet:PATH[,key=value]...``, ``hyperliquid:COIN[,interval=1h]...`` or
    ``binance:SYMBOL[,market=um][,interval=1h][,start=..][,end=..]`` (the public archive) or
    ``ccxt:EXCHANGE:SYMBOL[,interval=..][,start=..][,end=..]`` (any exchange ccxt supports).
    Under ``strict``, file rows with NaN or inf are an error instead of being
    dropped (``Bars.meta["dropped_rows"]`` counts the dropped ones). A remote
    source tells ``progress`` of every file or page it downloads (local ones
    tell nothing). Bad specs
    and bad data raise a one-line :class:`~engine.errors.DataError`.
    """
    parsed = parse_spec(os.fspath(spec))  # a Path to a .csv or .parquet file works too
    symbols = load_symbols(parsed, strict=strict, progress=progress)
    if len(symbols) > 1:
        names = ", ".join(b.symbol for b in symbols[:5]) + (", ..." if len(symbols) > 5 else "")
        raise DataError(
            f"{parsed.where}: holds {len(symbols)} symbols ({names}); expected one here (a basket takes it: "
            "genesis backtest, a study, engine.data.load_basket)"
        )
    return symbols[0]


def load_basket(
    specs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *, strict: bool = False,
    progress: ProgressCallback | None = None,
) -> list[Bars]:
    """Every symbol of one or several specs, in order (several specs load at once).

    ``csv:DIR`` / ``parquet:DIR`` give one symbol per file of the folder (named
    after the file), ``synthetic:...,symbols=N`` N symbols, ``hyperliquid:A+B``
    one per coin. Raises a one-line ``DataError`` naming the spec for an empty
    basket, a symbol given twice, symbols of different timeframes, or a symbol
    whose bars do not overlap the others'.
    """
    from engine.data.basket import check_members

    items = [specs] if isinstance(specs, str | os.PathLike) else list(specs)
    if not items:
        raise DataError("basket: no data specs; expected at least one")
    parsed = [parse_spec(os.fspath(item)) for item in items]  # every syntax error before any load
    loaded = _parallel(lambda p: load_symbols(p, strict=strict, progress=progress), parsed)
    bars = [b for group in loaded for b in group]
    # A folder's member is named by its own file.
    sources = [f"data spec {b.meta.get('spec') or p.text!r}" for p, group in zip(parsed, loaded, strict=True) for b in group]
    check_members(bars, sources)
    return bars


def load_market(
    specs: str | Sequence[str], *, strict: bool = False, progress: ProgressCallback | None = None
) -> Bars | Basket:
    """What a study runs on: the ``Bars`` of a spec naming one symbol, else the aligned ``Basket``
    (``progress`` as for :func:`load`)."""
    from engine.data.basket import align

    bars = load_basket(specs, strict=strict, progress=progress)
    return bars[0] if len(bars) == 1 else align(bars)


def load_symbols(parsed: DataSpec, *, strict: bool = False, progress: ProgressCallback | None = None) -> list[Bars]:
    """The symbols one parsed spec names (usually one); background cache warming waits meanwhile."""
    from engine.data.warm import demand

    with demand():
        return _load_symbols(parsed, strict, progress)


def _load_symbols(parsed: DataSpec, strict: bool, progress: ProgressCallback | None) -> list[Bars]:
    if parsed.kind in ("csv", "parquet"):
        path = Path(parsed.target).expanduser()
        if path.is_dir():
            return _load_folder(parsed, path, strict)
    elif parsed.kind == "synthetic" and "symbols" in parsed.options:
        from engine.data.sources.synthetic import load_synthetic_symbols

        with profiler.stage("data.load"):
            return load_synthetic_symbols(parsed)
    elif parsed.kind == "hyperliquid" and "+" in parsed.target:
        from engine.data.hyperliquid import load_hyperliquid_many

        with profiler.stage("data.load"):
            return load_hyperliquid_many(parsed.target.split("+"), dict(parsed.options), progress=progress)
    return [_load_one(parsed, strict, progress)]


def _load_folder(parsed: DataSpec, folder: Path, strict: bool) -> list[Bars]:
    """One symbol per file of ``folder`` whose name ends like a ``parsed.kind`` file (sorted by name)."""
    if "symbol" in parsed.options:
        raise DataError(f"{parsed.where}: option symbol: a folder names each symbol after its file; remove it")
    suffixes = tuple(suffix for suffix, kind in FILE_SUFFIXES.items() if kind == parsed.kind)
    try:
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(suffixes))
    except OSError as error:
        raise DataError(f"{parsed.where}: cannot list the folder ({error.strerror or error})") from None
    if not files:
        raise DataError(f"{parsed.where}: the folder holds no {' / '.join(suffixes)} files; expected one per symbol")
    specs = [DataSpec(parsed.kind, str(path), dict(parsed.options), f"{parsed.kind}:{path}") for path in files]
    return _parallel(lambda spec: _load_one(spec, strict, None), specs)


def _parallel(function: Callable[[_T], _R], items: list[_T]) -> list[_R]:
    """``function`` over ``items`` a few at a time, results in order; the first failure (in order) is raised."""
    if len(items) <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(LOAD_CONCURRENCY, len(items)), thread_name_prefix="genesis-load") as pool:
        futures = [pool.submit(function, item) for item in items]
        return [future.result() for future in futures]


def _load_one(parsed: DataSpec, strict: bool, progress: ProgressCallback | None) -> Bars:
    """The bars of one file, one synthetic series or one coin (remote sources tell ``progress``)."""
    with profiler.stage("data.load"):
        if parsed.kind == "synthetic":
            from engine.data.sources.synthetic import load_synthetic

            return load_synthetic(parsed)
        if parsed.kind == "csv":
            from engine.data.sources.csv import load_csv

            return load_csv(parsed, strict=strict)
        if parsed.kind == "parquet":
            from engine.data.sources.parquet import load_parquet

            return load_parquet(parsed, strict=strict)
        if parsed.kind == "hyperliquid":
            try:
                from engine.data.hyperliquid import load_hyperliquid
            except ModuleNotFoundError as error:
                if error.name != "engine.data.hyperliquid":
                    raise
                raise DataError(f"{parsed.where}: the hyperliquid source is not installed") from None
            return load_hyperliquid(parsed.target, dict(parsed.options), progress=progress)
        if parsed.kind == "binance":
            from engine.data.binance import load_binance

            return load_binance(parsed.target, dict(parsed.options), progress=progress)
        if parsed.kind == "ccxt":
            from engine.data.ccxt_source import load_ccxt

            return load_ccxt(parsed.target, dict(parsed.options), progress=progress)
    raise DataError(f"{parsed.where}: unknown source {parsed.kind!r}")  # parse_spec rejects these first


def dropped_rows_note(bars: Bars) -> str | None:
    """The note a command prints on stderr when rows were dropped, or None.

    ``dropped 3 rows with empty, NaN or inf values from prices.csv (first: line 7); add strict=true to the spec to reject them``
    """
    dropped = int(bars.meta.get("dropped_rows", 0) or 0)  # type: ignore[call-overload]
    if not dropped:
        return None
    source = bars.meta.get("path") or bars.meta.get("spec") or bars.symbol
    first = bars.meta.get("first_dropped")
    where = f" (first: {first})" if first else ""
    plural = "row" if dropped == 1 else "rows"
    return f"dropped {dropped} {plural} with empty, NaN or inf values from {source}{where}; add strict=true to the spec to reject them"
