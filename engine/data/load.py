"""``engine.data.load(spec)``: one entry point for every market-data source."""

from __future__ import annotations

import os

from engine.data.bars import Bars
from engine.data.spec import parse_spec
from engine.errors import DataError
from engine.profile import profiler


def load(spec: str | os.PathLike[str], *, strict: bool = False) -> Bars:
    """Load validated bars for a data spec.

    ``synthetic:bars=N,seed=S[,timeframe=1m]...``, ``csv:PATH[,key=value]...``,
    ``parquet:PATH[,key=value]...``, ``hyperliquid:COIN[,interval=1h]...`` or
    ``binance:SYMBOL[,market=um][,interval=1h][,start=..][,end=..]`` (the public archive).
    Under ``strict``, file rows with NaN or inf are an error instead of being
    dropped (``Bars.meta["dropped_rows"]`` counts the dropped ones). Bad specs
    and bad data raise a one-line :class:`~engine.errors.DataError`.
    """
    parsed = parse_spec(os.fspath(spec))  # a Path to a .csv or .parquet file works too
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
            return load_hyperliquid(parsed.target, dict(parsed.options))
        if parsed.kind == "binance":
            from engine.data.binance import load_binance

            return load_binance(parsed.target, dict(parsed.options))
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
