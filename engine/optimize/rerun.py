"""A stored trial run again: its study's data, strategy and options rebuilt from the store,
and the backtest re-run with its equity curve and trades."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import InputError
from engine.store.factory import open_study_store

if TYPE_CHECKING:
    from engine.backtest import BacktestOptions, BacktestResult
    from engine.backtest.inspect import TradeInspection
    from engine.data import Bars
    from engine.optimize.spec import StudySpec
    from engine.store.url import DatabaseUrl
    from engine.strategy import StrategyDef


@dataclass(frozen=True, slots=True)
class TrialSetup:
    """What trial ``number`` of study ``study`` ran on: the searched bars, strategy, params, options."""

    study: str
    number: int
    spec: StudySpec
    bars: Bars
    strategy: StrategyDef
    params: dict[str, Any]
    options: BacktestOptions

    @property
    def title(self) -> str:
        return f"{self.study} · trial #{self.number} · {self.strategy.label(self.params)}"


async def load_trial(db: str | Path | DatabaseUrl, name: str, number: int) -> TrialSetup:
    """Rebuild trial ``number`` of study ``name`` from the store ``db`` (its data loaded again:
    the in-sample bars the study searched, so the metrics equal the stored ones)."""
    from engine.data import Bars, load_market
    from engine.optimize.study import _load_spec_text, strategy_of
    from engine.optimize.validation import in_sample

    store = await open_study_store(db, readonly=True)
    try:
        record = await store.require_study(name)
        trial = next((t for t in await store.trials(record.id) if t.number == number), None)
    finally:
        await store.close()
    if trial is None:
        raise InputError(f"study {name!r}: no trial #{number} in {db}")
    spec = _load_spec_text(record.spec_toml, name)
    strategy = strategy_of(spec)
    params, options = spec.split({**dict(spec.strategy.fixed), **trial.params})
    bars = in_sample(await asyncio.to_thread(load_market, spec.data.all), spec.validation)
    if not isinstance(bars, Bars):
        raise InputError(f"study {name!r} runs on a basket of {len(bars.symbols)} symbols: the trade screen "
                         "shows one symbol (see the report's per-symbol table)")
    return TrialSetup(name, number, spec, bars, strategy, strategy.validate(params), options)


async def rerun_trial(db: str | Path | DatabaseUrl, name: str, number: int) -> BacktestResult:
    """Trial ``number`` of study ``name`` backtested again, with its equity curve and trades."""
    from engine.backtest import run

    setup = await load_trial(db, name, number)
    return await asyncio.to_thread(
        run, setup.bars, setup.strategy, setup.params, options=setup.options, equity=True, trades=True
    )


async def inspect_trial(db: str | Path | DatabaseUrl, name: str, number: int) -> TradeInspection:
    """Trial ``number`` of study ``name`` as the trade screen shows it."""
    from engine.backtest.inspect import inspect

    setup = await load_trial(db, name, number)
    return await asyncio.to_thread(
        inspect, setup.bars, setup.strategy, setup.params, options=setup.options, title=setup.title
    )


async def study_benchmark(
    db: str | Path | DatabaseUrl, name: str, total_return: float | None, *, spec_toml: str | None = None
) -> dict[str, Any]:
    """Buy-and-hold over the bars study ``name`` searched (its data loaded again) under its
    ``[backtest]`` options, and ``total_return`` (its best trial's) above it; ``{"error": ...}``
    when the data cannot be loaded (a network source offline, a file moved). ``spec_toml``: the
    study's stored spec, when the caller has read it (else it is read from ``db``)."""
    from engine.backtest.benchmark import buy_and_hold_return
    from engine.data import Bars, load_market
    from engine.errors import GenesisError
    from engine.optimize.study import _load_spec_text
    from engine.optimize.validation import in_sample

    if spec_toml is None:
        store = await open_study_store(db, readonly=True)
        try:
            spec_toml = (await store.require_study(name)).spec_toml
        finally:
            await store.close()
    try:
        spec = _load_spec_text(spec_toml, name)
        bars = in_sample(await asyncio.to_thread(load_market, spec.data.all), spec.validation)
    except GenesisError as error:
        return {"error": str(error)}
    if not isinstance(bars, Bars):
        return {"error": "the study runs on a basket: no single buy-and-hold benchmark is computed for it"}
    held = buy_and_hold_return(bars, spec.backtest)
    return {
        "data": spec.data.spec,
        "bars": len(bars),
        "buy_and_hold_return": held,
        "best_total_return": total_return,
        "excess_return": None if total_return is None else total_return - held,
    }
