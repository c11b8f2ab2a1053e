"""The built-in demo workspace: what ``genesis`` opens with no arguments.

Synthetic market data (no network), two demo studies run one after the other
(``sma_cross`` then ``ema_cross``, a few thousand trials each on the
``process`` backend), the paper-trading loop replaying synthetic bars, and the
profiler and monitor on. Files live in ``data_dir()/demo``: the study files
(rewritten at every start) and the demo store. An interrupted demo resumes
from its checkpoint; a finished one starts over.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import GenesisError, InputError
from engine.paths import data_dir

if TYPE_CHECKING:
    from engine.bus import EventBus
    from engine.live.loop import PaperTradingLoop
    from engine.runtime import Engine, PaperHost

DEMO_BARS = 1_000_000
DEMO_SEED = 7
PAPER_BARS = 20_000
PAPER_BARS_PER_S = 25.0

#: The planted edge of the SMA study's market: drift of +-1600%/year in spells of half a day on
#: average, which crossovers of tens to hundreds of minutes ride (docs/data.md, ``trend``).
DEMO_TREND = "trend=16,trend_days=0.5"

SMA_STUDY = """\
# The Genesis demo, study 1 of 2: an SMA crossover searched at random over a synthetic
# market with a planted, persistent edge (trends that last half a day on average).
# Its winner is real: a low probability of backtest overfitting (PBO), a robust
# best near the raw best, and the walk-forward holds up.
name = "demo-sma-cross"

[data]
spec = "synthetic:bars={bars},seed={seed},timeframe=1m,{trend}"

[strategy]
name = "sma_cross"

[space]
fast = {{ int = [3, 60] }}
slow = {{ int = [20, 300], step = 2 }}
constraints = ["fast < slow"]

[backtest]
fee = 0.0005
slippage = 0.0002

[search]
sampler = "random"
trials = {trials}
seed = 42
objective = "sharpe"

[execution]
backend = "{backend}"
checkpoint_every = 200
artifacts = "top:10"

[validation]
out_of_sample = 0.25
walk_forward_folds = 4
blocks = 16
"""

EMA_STUDY = (
    SMA_STUDY.replace("demo-sma-cross", "demo-ema-cross")
    .replace('name = "sma_cross"', 'name = "ema_cross"')
    .replace(
        "# The Genesis demo, study 1 of 2: an SMA crossover searched at random over a synthetic\n"
        "# market with a planted, persistent edge (trends that last half a day on average).\n"
        "# Its winner is real: a low probability of backtest overfitting (PBO), a robust\n"
        "# best near the raw best, and the walk-forward holds up.\n",
        "# The Genesis demo, study 2 of 2: an EMA crossover searched at random over a driftless\n"
        "# random walk without costs: nothing to find. It still has a winner with a positive\n"
        "# Sharpe ratio; that winner is luck: PBO about one half or more, and it fades out of sample.\n",
    )
    .replace(",{trend}", "")
    .replace("fee = 0.0005\nslippage = 0.0002", "fee = 0.0\nslippage = 0.0")
)


def demo_dir() -> Path:
    """``data_dir()/demo``: the demo's study files and store."""
    return data_dir() / "demo"


def demo_store() -> Path:
    return demo_dir() / "demo.db"


def write_demo_studies(
    directory: Path | None = None,
    *,
    trials: int = 5000,
    bars: int = DEMO_BARS,
    backend: str = "process",
) -> list[Path]:
    """Write the demo study files (overwriting old ones); their paths in run order."""
    directory = directory or demo_dir()
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, template in (("demo-sma-cross.toml", SMA_STUDY), ("demo-ema-cross.toml", EMA_STUDY)):
        path = directory / name
        path.write_text(template.format(bars=bars, seed=DEMO_SEED, trials=trials, backend=backend, trend=DEMO_TREND))
        paths.append(path)
    return paths


async def _finished(db: Path) -> bool:
    """Whether the demo store holds a completed last demo study (then the demo starts over)."""
    from engine.store.records import StudyState
    from engine.store.study_sqlite import SqliteStore

    if not db.exists():
        return False
    try:
        store = await SqliteStore.open(db, readonly=True)
    except GenesisError:
        return True  # unreadable: start over
    try:
        study = await store.get_study("demo-ema-cross")
    finally:
        await store.close()
    return study is not None and study.state in (StudyState.COMPLETE, StudyState.FAILED)


async def reset_if_finished(db: Path) -> None:
    """Remove a finished demo store so the next demo shows live figures again."""
    if await _finished(db):
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{db}{suffix}").unlink()


def paper_factory(
    *,
    bars: int,
    seed: int,
    strategy: str = "sma_cross",
    params: dict[str, Any] | None = None,
    bars_per_s: float = PAPER_BARS_PER_S,
) -> Callable[[Engine], PaperHost]:
    """A factory the Engine calls with itself: the paper loop replaying synthetic bars on its bus."""

    def make(engine: Engine) -> PaperHost:
        from engine.backtest import BacktestOptions
        from engine.data import load
        from engine.live import LoopConfig, PaperTradingLoop, RegistrySignals, ReplayFeed
        from engine.runtime import PaperHost

        data = load(f"synthetic:bars={bars},seed={seed},timeframe=1m")
        config = LoopConfig(BacktestOptions(fee=0.0005, slippage=0.0002), recent=30)

        def make_loop(bus: EventBus) -> PaperTradingLoop:
            feed = ReplayFeed(data, bars_per_s=bars_per_s)
            source = RegistrySignals(strategy, params or {"fast": 10, "slow": 40})
            return PaperTradingLoop(feed, source, config, bus=bus)

        assert engine.bus is not None  # the engine calls its factory once its bus runs
        return PaperHost(make_loop, engine.bus, repeat=True)

    return make


def demo_memory_mb(workers: int | None) -> float:
    """The demo's memory warning: the console and fork server, plus room for each worker's
    data, imports and full indicator cache (with a margin)."""
    # not from engine.backtest: that imports numba (about a second) before the console's first frame
    from engine.profile.caches import indicator_cache_budget

    n = workers if workers and workers > 0 else (os.cpu_count() or 1)
    per_worker_mb = 256 + indicator_cache_budget() / 2**20  # data and imports, and the cache
    return 1024 + n * per_worker_mb


def demo_engine(
    *,
    db: Path | None = None,
    backend: str = "process",
    workers: int | None = None,
    paper: bool = True,
) -> Engine:
    """An :class:`~engine.runtime.Engine` for the demo workspace (not started)."""
    from engine.monitor.alert_spec import AlertsSpec, Threshold
    from engine.runtime import Engine

    factory = paper_factory(bars=PAPER_BARS, seed=DEMO_SEED + 1) if paper else None
    # The demo paces its replay at a few dozen bars a second on purpose: an
    # event-rate floor meant for live feeds would only cry wolf here. Its memory
    # is known: each worker fills an indicator cache on the 1M-bar data, up to
    # its budget (``indicator_cache_budget``: 256 MiB gave about 500 MB a worker,
    # 1.4-1.5 GB in all with two), so the 1 GB default warned on every launch,
    # and the forecast read the caches filling up as a leak.
    warning_mb = demo_memory_mb(workers)
    alerts = AlertsSpec(
        event_rate=Threshold(enabled=False),
        memory_mb=Threshold(warning=warning_mb, critical=2 * warning_mb),
        memory_forecast=False,
    )
    return Engine(
        alerts=alerts,
        db=db or demo_store(),
        workspace="demo",
        backend=backend,
        workers=workers,
        paper_factory=factory,
    )


async def start_demo(
    engine: Engine, *, trials: int = 5000, bars: int = DEMO_BARS, backend: str = "process"
) -> list[Path]:
    """Start ``engine`` and its demo studies (the second follows the first)."""
    if not isinstance(engine.db, Path):
        raise InputError("the demo keeps its studies in a SQLite store (give --db a file, not a URL)")
    await reset_if_finished(engine.db)
    paths = write_demo_studies(engine.db.parent, trials=trials, bars=bars, backend=backend)
    await engine.start()
    await engine.start_study(paths[0], then=paths[1:])
    return paths
