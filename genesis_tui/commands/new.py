"""``genesis new strategy NAME``: a commented strategy template in the user's strategies folder."""

from __future__ import annotations

import argparse

NAME = "new"
HELP = "write a commented strategy template into the strategies folder"

TEMPLATE = '''"""{name}: one line saying what the strategy does.

Found by name (genesis backtest --strategy {name}) because it lives in the
strategies folder. The contract, the ta functions and numba tips: docs/strategies.md.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine.strategy import Param, strategy, ta


# Your own compiled helpers: cache=True keeps the machine code on disk, keyed by
# this file's content (an edit recompiles, an unchanged file loads at once).
@njit(cache=True)
def spread_nb(fast: np.ndarray, slow: np.ndarray) -> np.ndarray:
    return (fast - slow) / slow


@strategy(
    # Parameters the optimizer searches: name, default, low, high (inclusive).
    params=[
        Param.int("fast", 10, 2, 200),
        Param.int("slow", 50, 5, 500),
        Param.float("band", 0.0, 0.0, 0.05),
    ],
    constraints=["fast < slow"],  # NAME OP NAME, checked before every trial
    lookback="slow",  # bars of history a signal needs: a parameter, a number, or "3*slow + 10"
)
def {name}(bars, fast, slow, band):
    """Long when the fast SMA clears the slow one by a band."""
    # bars.open/high/low/close/volume are read-only float64 arrays, one value per bar.
    f = ta.sma(bars.close, fast)
    s = ta.sma(bars.close, slow)
    spread = spread_nb(f, s)
    # Signals are evaluated on each bar's close and may use bars up to that bar
    # only (genesis check {name} finds look-ahead). Return two bool arrays.
    entries = ta.crossed_above(spread, band)
    exits = ta.crossed_below(spread, 0.0)
    return entries, exits
'''


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=("strategy",), help="what to create")
    parser.add_argument("name", metavar="NAME", help="the strategy's name (a Python identifier)")


def run(args: argparse.Namespace) -> int:
    from engine.errors import ConfigError
    from engine.paths import check_name
    from engine.strategy import strategies_dir

    name = check_name(args.name, "genesis new strategy NAME")
    if not name.isidentifier():
        raise ConfigError(f"genesis new strategy: {name!r} must be a Python identifier (letters, digits and _)")
    folder = strategies_dir()
    path = folder / f"{name}.py"
    if path.exists():
        raise ConfigError(f"genesis new strategy: {path} already exists (not overwritten)")
    folder.mkdir(parents=True, exist_ok=True)
    with path.open("x", encoding="utf-8") as handle:
        handle.write(TEMPLATE.format(name=name))
    print(f"wrote {path}: try genesis check {name}, then genesis backtest --strategy {name} --data synthetic:bars=100000,seed=1")
    return 0
