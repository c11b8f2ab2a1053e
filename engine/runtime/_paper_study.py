"""The paper loop a study file describes: its data (one symbol or a basket), strategy and backtest
options, with the parameters of the study's best stored trial (else the strategy's defaults)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.backtest import BacktestOptions
    from engine.bus import EventBus
    from engine.data import Bars, Basket
    from engine.live.control import PaperLoop
    from engine.optimize.spec import StudySpec
    from engine.runtime._engine import Engine
    from engine.runtime._paper import PaperHost
    from engine.store.url import DatabaseUrl
    from engine.strategy import StrategyDef

log = logging.getLogger("engine.runtime")


@dataclass(frozen=True, slots=True)
class StudyPaper:
    """What a study's paper loop replays, and where its parameters came from (``origin``)."""

    data: Bars | Basket
    strategy: StrategyDef
    params: dict[str, Any]
    options: BacktestOptions
    origin: str  # "trial #N of STUDY" or "the strategy's defaults"


def paper_factory_for(
    data: Bars | Basket,
    strategy: str | StrategyDef,
    params: Mapping[str, Any],
    options: BacktestOptions,
    *,
    bars_per_s: float,
    note: str = "",
) -> Callable[[Engine], PaperHost]:
    """A factory the Engine calls with itself: one symbol's paper loop, or a basket's, replaying ``data``
    on the engine's bus (again from the start when it reaches the end); ``note`` (where the parameters
    came from) goes to the engine's log."""

    def make(engine: Engine) -> PaperHost:
        from engine.data import Basket
        from engine.live import (
            BasketPaperLoop,
            LoopConfig,
            PaperTradingLoop,
            ReplayFeed,
            signals_for,
        )
        from engine.runtime._paper import PaperHost

        config = LoopConfig(options, recent=30)

        def make_loop(bus: EventBus) -> PaperLoop:
            if isinstance(data, Basket):
                return BasketPaperLoop(data, strategy, params, config, bus=bus, bars_per_s=bars_per_s)
            source = signals_for(strategy, params, symbol=data.symbol, timeframe=data.timeframe)
            return PaperTradingLoop(ReplayFeed(data, bars_per_s=bars_per_s), source, config, bus=bus)

        assert engine.bus is not None  # the engine calls its factory once its bus runs
        if note:
            log.info("paper loop: %s", note)
        return PaperHost(make_loop, engine.bus, repeat=True)

    return make


def study_paper(path: str | Path, db: str | Path | DatabaseUrl | None = None) -> StudyPaper:
    """The study file at ``path`` as a paper loop's inputs (bad input: ``ConfigError``/``InputError``)."""
    from engine.data import load_market
    from engine.optimize.spec import load_study
    from engine.optimize.study import strategy_of
    from engine.paths import default_store_path

    spec = load_study(path)
    strategy = strategy_of(spec)
    store = db if db is not None else (spec.execution.db or default_store_path())
    best = asyncio.run(_best_params(spec, store))
    origin = "the strategy's defaults"
    chosen: dict[str, Any] = dict(spec.strategy.fixed)
    if best is not None:
        number, trial_params = best
        chosen.update(trial_params)
        origin = f"trial #{number} of {spec.name}"
    params, options = spec.split(chosen)
    return StudyPaper(load_market(spec.data.all), strategy, strategy.validate(params), options, origin)


async def _best_params(spec: StudySpec, db: str | Path | DatabaseUrl) -> tuple[int, dict[str, Any]] | None:
    """(number, params) of the study's best trial in ``db``; ``None`` when the store, the study or a
    finished trial is missing."""
    from engine.store.factory import open_study_store
    from engine.store.url import store_location

    location = store_location(db)
    if isinstance(location, Path) and not location.exists():
        return None
    store = await open_study_store(location, readonly=True)
    try:
        record = await store.get_study(spec.name)
        best = await store.best(record.id, maximize=spec.maximize) if record is not None else []
    finally:
        await store.close()
    return (best[0].number, dict(best[0].params)) if best else None
