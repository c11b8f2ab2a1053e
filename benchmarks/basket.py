"""Basket benchmarks: a 20-symbol x 100,000-bar basket under ``split`` against 20
single-symbol kernel runs, ``shared`` against ``split``, both against vectorbt
(``cash_sharing=True``, and ``group_by`` without cash sharing; goal: 10x faster),
and a 5,000-trial basket study on the ``process`` backend against the same grid
as a single-symbol study (per trial and symbol).

Every ratio compares timings taken in the same process after compilation (best
of several repetitions, timed alternately). ``python -m benchmarks.basket [--quick] [--json]``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from benchmarks.backtest import best_cpu_of_pair, best_of_pair
from engine.backtest import nb
from engine.backtest.basket import run_basket
from engine.backtest.enums import DIR_LONG, KIND_SIGNALS, N_METRICS, TRADE_DTYPE
from engine.data import Bars, align, periods_per_year

GOALS = {"split_vs_singles_ratio": 1.3, "shared_vs_split_ratio": 2.0, "faster_than_vectorbt": 10.0}
FEE = 0.001
CASH = 10_000.0
STOP_LOSS = 0.02
SYMBOLS = 20
BARS = 100_000


def make_basket(n: int, m: int, seed: int = 7) -> tuple[list[Bars], np.ndarray, np.ndarray]:
    """``m`` random walks of ``n`` one-minute bars on one timeline, and random signals (about one a day)."""
    rng = np.random.default_rng(seed)
    ts = 1_700_000_000_000_000_000 + np.arange(n, dtype=np.int64) * 60_000_000_000
    bars = []
    for k in range(m):
        close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.001, n)))
        open_ = np.r_[close[0], close[:-1]]
        high = np.maximum(open_, close) * (1.0 + rng.uniform(0.0, 0.0005, n))
        low = np.minimum(open_, close) * (1.0 - rng.uniform(0.0, 0.0005, n))
        bars.append(Bars(ts, open_, high, low, close, np.ones(n), symbol=f"S{k:02d}", timeframe="1m"))
    entries = rng.random((n, m)) < 0.002
    exits = rng.random((n, m)) < 0.002
    return bars, entries, exits


def bench(n: int, m: int, repeat: int, stop_loss: float) -> dict[str, Any]:
    bars, entries, exits = make_basket(n, m)
    basket = align(bars)
    entries_f, exits_f = np.asfortranarray(entries), np.asfortranarray(exits)
    columns = [(b, np.ascontiguousarray(entries[:, k]), np.ascontiguousarray(exits[:, k])) for k, b in enumerate(bars)]
    kernel = nb.simulate_variant(False, stop_loss > 0.0)
    ppy = periods_per_year("1m")
    metrics = np.empty(N_METRICS)
    no_equity, no_trades = np.empty(0), np.empty(0, dtype=TRADE_DTYPE)

    def singles() -> float:
        total = 0.0
        for b, e, x in columns:
            kernel(b.open, b.high, b.low, b.close, KIND_SIGNALS, b.close, b.close, 0.0, 0.0, e, x, False, DIR_LONG,
                   FEE, 0.0, 1.0, CASH / m, stop_loss, 0.0, ppy, no_equity, no_trades, metrics)  # fmt: skip
            total += metrics[0]
        return total

    def basket_run(allocation: str) -> Any:
        return run_basket(basket, entries_f, exits_f, allocation=allocation, fee=FEE, cash=CASH, stop_loss=stop_loss)

    split_value = basket_run("split").metrics.final_value  # compiles
    same = abs(split_value - singles()) <= 1e-9 * CASH
    basket_run("shared")
    # CPU time: every side is one thread, and other processes' load adds wall time, not ours.
    split_s, singles_s = best_cpu_of_pair(lambda: basket_run("split"), singles, repeat)
    shared_s, split_again_s = best_cpu_of_pair(lambda: basket_run("shared"), lambda: basket_run("split"), repeat)
    split_best = min(split_s, split_again_s)
    out = {
        "symbols": m,
        "bars": n,
        "split_s": split_best,
        "singles_s": singles_s,
        "shared_s": shared_s,
        "split_ns_per_bar_symbol": split_best / (n * m) * 1e9,
        "split_vs_singles_ratio": split_best / singles_s,
        "shared_vs_split_ratio": shared_s / split_best,
        "same_result": bool(same),
    }
    out["meets_goal"] = (
        out["split_vs_singles_ratio"] <= GOALS["split_vs_singles_ratio"]
        and out["shared_vs_split_ratio"] <= GOALS["shared_vs_split_ratio"]
        and out["same_result"]
    )
    return out


def bench_vectorbt(n: int, m: int, repeat: int) -> dict[str, Any]:
    """vectorbt's ``from_signals`` on the same basket (fills at the close, fees, the equity curve asked
    for on both sides): one group with ``cash_sharing=True`` against ``shared``, and ``group_by`` without
    cash sharing (``cash / m`` per column) against ``split``; ``split`` must equal vectorbt's value."""
    try:
        import pandas as pd
        import vectorbt as vbt
    except ImportError:
        return {"installed": False}
    bars, entries, exits = make_basket(n, m)
    close = pd.DataFrame(np.column_stack([b.close for b in bars]))
    entries_df, exits_df = pd.DataFrame(entries), pd.DataFrame(exits)
    basket = align(bars)
    entries_f, exits_f = np.asfortranarray(entries), np.asfortranarray(exits)
    group = np.zeros(m, dtype=int)

    def vbt_shared() -> Any:
        return vbt.Portfolio.from_signals(
            close, entries_df, exits_df, fees=FEE, init_cash=CASH, size=1.0 / m, size_type="percent",
            group_by=group, cash_sharing=True, freq="1min",
        ).value()  # fmt: skip

    def vbt_split() -> Any:
        return vbt.Portfolio.from_signals(
            close, entries_df, exits_df, fees=FEE, init_cash=CASH / m, group_by=group, cash_sharing=False,
            freq="1min",
        ).value()  # fmt: skip

    def ours(allocation: str) -> Any:
        return run_basket(basket, entries_f, exits_f, allocation=allocation, fill="close", fee=FEE, cash=CASH,
                          equity=True)  # fmt: skip

    split_value = ours("split").metrics.final_value
    vbt_value = float(vbt_split().to_numpy().ravel()[-1])
    vbt_shared()
    ours("shared")
    shared_s, vbt_shared_s = best_of_pair(lambda: ours("shared"), vbt_shared, repeat)
    split_s, vbt_split_s = best_of_pair(lambda: ours("split"), vbt_split, repeat)
    out: dict[str, Any] = {
        "installed": True,
        "version": vbt.__version__,
        "shared_s": shared_s,
        "vectorbt_cash_sharing_s": vbt_shared_s,
        "vectorbt_vs_shared": vbt_shared_s / shared_s,
        "split_s": split_s,
        "vectorbt_group_by_s": vbt_split_s,
        "vectorbt_vs_split": vbt_split_s / split_s,
        "split_equals_vectorbt": abs(split_value - vbt_value) <= 1e-6 * abs(vbt_value),
    }
    out["meets_goal"] = (
        min(out["vectorbt_vs_shared"], out["vectorbt_vs_split"]) >= GOALS["faster_than_vectorbt"]
        and out["split_equals_vectorbt"]
    )
    return out


STUDY = """\
name = "{name}"

[data]
{data}

[strategy]
name = "sma_cross"

[space]
fast = {{ int = [2, 101] }}
slow = {{ int = [10, 400], step = 2 }}
constraints = ["fast < slow"]

[backtest]
fee = 0.001
allocation = "{allocation}"

[search]
sampler = "grid"
trials = {trials}
objective = "sharpe"

[execution]
backend = "process"
workers = 2
artifacts = "top:5"
"""
#: The basket study: symbols x bars, trials (full run; --quick uses a fifth of each).
STUDY_SIZE = {"symbols": 5, "bars": 20_000, "trials": 5_000}


def bench_study(quick: bool) -> dict[str, Any]:
    """A grid study of ``trials`` over a ``symbols``-symbol basket on the process backend (2 workers), end to
    end, against the same grid over one symbol of the same length; ``per_trial_symbol_ratio`` is the basket's
    time per trial and symbol over the single study's time per trial (1.0: a basket trial costs exactly as
    many single trials as it has symbols)."""
    import shutil
    import tempfile
    from pathlib import Path

    from benchmarks.optimize import _run_study

    m, n, trials = STUDY_SIZE["symbols"], STUDY_SIZE["bars"], STUDY_SIZE["trials"]
    if quick:
        n, trials = n // 5, trials // 5
    workdir = Path(tempfile.mkdtemp(prefix="genesis-bench-basket-"))
    try:
        figures: dict[str, Any] = {"symbols": m, "bars": n, "trials": trials, "backend": "process", "workers": 2}
        cases = {
            "single": f'spec = "synthetic:bars={n},seed=7,timeframe=1m"',
            "basket": f'spec = "synthetic:bars={n},seed=7,timeframe=1m,symbols={m}"',
        }
        warm = workdir / "warm.toml"  # this process's one-time costs land on neither case
        warm.write_text(STUDY.format(name="warm", data=cases["basket"].replace(f"bars={n}", "bars=2000"),
                                     allocation="shared", trials=50))  # fmt: skip
        _run_study(warm, workdir / "warm.db")
        for case, data in cases.items():
            path = workdir / f"{case}.toml"
            path.write_text(STUDY.format(name=case, data=data, allocation="split", trials=trials))
            summary, elapsed, _ = _run_study(path, workdir / f"{case}.db")
            figures[f"{case}_s"] = round(elapsed, 3)
            figures[f"{case}_trials"] = summary.trials
            figures[f"{case}_trials_per_s"] = round(summary.trials / elapsed, 1)
        figures["per_trial_symbol_ratio"] = round(figures["basket_s"] / (m * figures["single_s"]), 3)
        return figures
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(quick: bool = False, study: bool = True) -> dict[str, Any]:
    """Every basket figure; ``quick`` repeats less and skips vectorbt."""
    repeat = 3 if quick else 7
    figures: dict[str, Any] = {
        "basket_20x100k": bench(BARS, SYMBOLS, repeat, 0.0),
        "basket_20x100k_stops": bench(BARS, SYMBOLS, repeat, STOP_LOSS),
    }
    if not quick:
        figures["vectorbt_20x100k"] = bench_vectorbt(BARS, SYMBOLS, repeat)
    if study:
        figures["basket_study"] = bench_study(quick)
    figures["meets_goals"] = all(part.get("meets_goal", True) for part in figures.values() if isinstance(part, dict))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, no vectorbt")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--only-study", action="store_true", help="only the basket study against the single one")
    args = parser.parse_args(argv)
    figures = {"basket_study": bench_study(args.quick)} if args.only_study else run(quick=args.quick)
    if args.json:
        print(json.dumps(figures))
        return 0
    for section, part in figures.items():
        for name, value in part.items() if isinstance(part, dict) else [("", part)]:
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            print(f"{(section + '.' + name).rstrip('.'):36s} {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
