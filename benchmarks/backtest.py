"""Backtest benchmarks: ``run()`` and a 174-pair sweep against bare numba loops,
the kernel's CPU time per trial against a bare final-value loop, first-call
compile time (cold and warm on-disk cache), vectorbt for context.

Every ratio compares two timings taken in the same process after compilation
(best of several repetitions). ``python -m benchmarks.backtest [--quick] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

GOALS = {
    "run_vs_bare_ratio": 1.5,
    "sweep_vs_bare_ratio": 1.5,
    "sweep_peak_rss_mb": 200.0,
    "kernel_vs_final_value_ratio": 1.3,
    "compile_cold_s": 3.0,
    "compile_warm_s": 0.3,
}
FEE = 0.001
CASH = 10_000.0
SWEEP_PAIRS = [(f, s) for f in range(5, 51, 5) for s in range(20, 201, 10) if f < s]


def best_of(function: Callable[[], Any], repeat: int) -> float:
    """The fastest of ``repeat`` timed calls, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def best_cpu_of_pair(
    ours: Callable[[], Any], reference: Callable[[], Any], repeat: int
) -> tuple[float, float]:
    """Least CPU time (``time.process_time``) of two single-threaded functions,
    timed alternately: other processes' load adds wall time, not our CPU time."""
    best_ours = best_reference = float("inf")
    for _ in range(repeat):
        for function, is_ours in ((ours, True), (reference, False)):
            start = time.process_time()
            function()
            spent = time.process_time() - start
            if is_ours:
                best_ours = min(best_ours, spent)
            else:
                best_reference = min(best_reference, spent)
    return best_ours, best_reference


def best_of_pair(ours: Callable[[], Any], reference: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Fastest times of two functions timed alternately, so that a burst of load
    from other processes hits both rather than one."""
    best_ours = best_reference = float("inf")
    for _ in range(repeat):
        best_ours = min(best_ours, best_of(ours, 1))
        best_reference = min(best_reference, best_of(reference, 1))
    return best_ours, best_reference


# --------------------------------------------------------------------------
# The references: what a competent numba programmer writes by hand for one job.
# --------------------------------------------------------------------------


@njit(cache=True, nogil=True, error_model="numpy")
def _bare_sma_nb(close: np.ndarray, window: int, out: np.ndarray) -> None:
    total = 0.0
    for i in range(close.shape[0]):
        if i < window:
            total += close[i]
            out[i] = total / window if i == window - 1 else np.nan
        else:
            total += close[i] - close[i - window]
            out[i] = total / window


@njit(cache=True, nogil=True, error_model="numpy")
def _bare_cross_on_mas_nb(
    open_: np.ndarray, close: np.ndarray, fast: np.ndarray, slow: np.ndarray, fee: float, cash: float
) -> tuple[float, float, float, float, float, int, int]:
    """Long-only SMA cross, next-open fills, fee, equity and the sums every metric needs."""
    n = close.shape[0]
    units = 0.0
    holding = 0
    pending = 0
    prev_equity = cash
    peak = cash
    max_dd = 0.0
    sum_r = 0.0
    sum_r2 = 0.0
    sum_down2 = 0.0
    exposed = 0
    trades = 0
    for i in range(n):
        if pending == 1 and holding == 0:
            units = cash / (open_[i] * (1.0 + fee))
            notional = units * open_[i]
            cash -= notional + notional * fee
            holding = 1
        elif pending == -1 and holding == 1:
            notional = units * open_[i]
            cash += notional - notional * fee
            units = 0.0
            holding = 0
            trades += 1
        pending = 0
        if i > 0:
            if fast[i - 1] < slow[i - 1] and fast[i] > slow[i]:
                pending = 1
            elif fast[i - 1] > slow[i - 1] and fast[i] < slow[i]:
                pending = -1
        equity = cash + units * close[i]
        r = equity / prev_equity - 1.0
        sum_r += r
        sum_r2 += r * r
        down = min(r, 0.0)
        sum_down2 += down * down
        peak = max(peak, equity)
        max_dd = max(max_dd, 1.0 - equity / peak)
        exposed += holding
        prev_equity = equity
    return prev_equity, sum_r, sum_r2, sum_down2, max_dd, exposed, trades


@njit(cache=True, nogil=True, error_model="numpy")
def bare_sma_cross_nb(
    open_: np.ndarray, close: np.ndarray, fast: int, slow: int, fee: float, cash: float
) -> tuple[float, float, float, float, float, int, int]:
    """The whole job in one loop: both SMAs by running sums, crossings, fills, metrics sums."""
    n = close.shape[0]
    units = 0.0
    holding = 0
    pending = 0
    sum_fast = 0.0
    sum_slow = 0.0
    prev_fast = np.nan
    prev_slow = np.nan
    prev_equity = cash
    peak = cash
    max_dd = 0.0
    sum_r = 0.0
    sum_r2 = 0.0
    sum_down2 = 0.0
    exposed = 0
    trades = 0
    for i in range(n):
        if pending == 1 and holding == 0:
            units = cash / (open_[i] * (1.0 + fee))
            notional = units * open_[i]
            cash -= notional + notional * fee
            holding = 1
        elif pending == -1 and holding == 1:
            notional = units * open_[i]
            cash += notional - notional * fee
            units = 0.0
            holding = 0
            trades += 1
        pending = 0
        sum_fast += close[i] if i < fast else close[i] - close[i - fast]
        sum_slow += close[i] if i < slow else close[i] - close[i - slow]
        f = sum_fast / fast if i >= fast - 1 else np.nan
        s = sum_slow / slow if i >= slow - 1 else np.nan
        if prev_fast < prev_slow and f > s:
            pending = 1
        elif prev_fast > prev_slow and f < s:
            pending = -1
        prev_fast = f
        prev_slow = s
        equity = cash + units * close[i]
        r = equity / prev_equity - 1.0
        sum_r += r
        sum_r2 += r * r
        down = min(r, 0.0)
        sum_down2 += down * down
        peak = max(peak, equity)
        max_dd = max(max_dd, 1.0 - equity / peak)
        exposed += holding
        prev_equity = equity
    return prev_equity, sum_r, sum_r2, sum_down2, max_dd, exposed, trades


@njit(cache=True, nogil=True, error_model="numpy")
def bare_sweep_nb(
    open_: np.ndarray,
    close: np.ndarray,
    windows: np.ndarray,
    fast_idx: np.ndarray,
    slow_idx: np.ndarray,
    fee: float,
    cash: float,
) -> np.ndarray:
    """Each SMA once into a matrix, then every pair's loop over it: final value and
    the metric sums of every pair (all kept, so that none is optimised away)."""
    mas = np.empty((windows.shape[0], close.shape[0]))
    for k in range(windows.shape[0]):
        _bare_sma_nb(close, windows[k], mas[k])
    out = np.empty((fast_idx.shape[0], 7))
    for p in range(fast_idx.shape[0]):
        final, sum_r, sum_r2, sum_down2, max_dd, exposed, trades = _bare_cross_on_mas_nb(
            open_, close, mas[fast_idx[p]], mas[slow_idx[p]], fee, cash
        )
        out[p, 0] = final
        out[p, 1] = sum_r
        out[p, 2] = sum_r2
        out[p, 3] = sum_down2
        out[p, 4] = max_dd
        out[p, 5] = exposed
        out[p, 6] = trades
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def bare_final_values_nb(
    open_: np.ndarray,
    close: np.ndarray,
    mas: np.ndarray,
    fast_idx: np.ndarray,
    slow_idx: np.ndarray,
    fill_close: bool,
    fee: float,
    cash: float,
    out: np.ndarray,
) -> None:
    """The floor of a trial: each pair's final value and nothing else (long-only SMA
    cross on precomputed SMAs, the kernel's fill convention and fee arithmetic)."""
    n = close.shape[0]
    for p in range(fast_idx.shape[0]):
        fast = mas[fast_idx[p]]
        slow = mas[slow_idx[p]]
        money = cash
        units = 0.0
        for i in range(1 if fill_close else 2, n):
            j = i if fill_close else i - 1
            price = close[i] if fill_close else open_[i]
            if units == 0.0:
                if fast[j - 1] < slow[j - 1] and fast[j] > slow[j]:
                    units = money / (price * (1.0 + fee))
                    notional = units * price
                    money -= notional + notional * fee
            elif fast[j - 1] > slow[j - 1] and fast[j] < slow[j]:
                notional = units * price
                money += notional - notional * fee
                units = 0.0
        out[p] = money + units * close[n - 1]


def final_value_loop(bars: Any, pairs: list[tuple[int, int]], fill_close: bool, threads: int = 2) -> tuple[float, np.ndarray]:
    """The floor of a study (issue 20's reference): wall seconds of ``bare_final_values_nb`` over
    ``pairs`` on ``threads`` threads, each SMA computed once (timed, compile excluded), and the
    final values. Each thread takes every ``threads``-th pair, so long and short windows mix."""
    from concurrent.futures import ThreadPoolExecutor

    from engine.backtest.nb import sma_nb

    windows = sorted({w for pair in pairs for w in pair})
    row = {w: k for k, w in enumerate(windows)}
    fast = np.array([row[f] for f, _ in pairs], dtype=np.int64)
    slow = np.array([row[s] for _, s in pairs], dtype=np.int64)
    small = np.zeros((1, 64))
    sma_nb(bars.close[:64], 2)
    bare_final_values_nb(bars.open[:64], bars.close[:64], small, fast[:0], slow[:0], fill_close, FEE, CASH,
                         np.empty(0))  # compile outside the timing
    out = np.empty(len(pairs))
    parts = [np.arange(k, len(pairs), threads) for k in range(threads)]
    finals = [np.empty(len(part)) for part in parts]
    with ThreadPoolExecutor(threads) as pool:
        start = time.perf_counter()
        mas = np.empty((len(windows), len(bars)))

        def fill_rows(w: int) -> None:
            mas[row[w]] = sma_nb(bars.close, w)

        list(pool.map(fill_rows, windows))  # the SMAs on both threads too: the strictest floor
        list(pool.map(
            lambda k: bare_final_values_nb(bars.open, bars.close, mas, fast[parts[k]], slow[parts[k]], fill_close,
                                           FEE, CASH, finals[k]),
            range(threads),
        ))
        seconds = time.perf_counter() - start
    for part, values in zip(parts, finals, strict=True):
        out[part] = values
    return seconds, out


# --------------------------------------------------------------------------
# Measurements.
# --------------------------------------------------------------------------


def bench_run(n: int, repeat: int) -> dict[str, Any]:
    """(a) ``run()`` for sma_cross(10, 50) on n bars vs the one-loop reference."""
    from engine.backtest import run
    from engine.data import load

    bars = load(f"synthetic:bars={n},seed=1,timeframe=1m")
    ours = run(bars, "sma_cross", {"fast": 10, "slow": 50}, fee=FEE)
    bare = bare_sma_cross_nb(bars.open, bars.close, 10, 50, FEE, CASH)
    same = abs(ours.metrics.final_value / bare[0] - 1.0) < 1e-9 and ours.metrics.trades == bare[6]
    run_s, bare_s = best_of_pair(
        lambda: run(bars, "sma_cross", {"fast": 10, "slow": 50}, fee=FEE),
        lambda: bare_sma_cross_nb(bars.open, bars.close, 10, 50, FEE, CASH),
        repeat,
    )
    return {
        "bars": n,
        "run_s": run_s,
        "bare_loop_s": bare_s,
        "run_ns_per_bar": run_s / n * 1e9,
        "bare_ns_per_bar": bare_s / n * 1e9,
        "run_vs_bare_ratio": run_s / bare_s,
        "same_result": bool(same),
        "goal_ratio": GOALS["run_vs_bare_ratio"],
        "meets_goal": run_s / bare_s <= GOALS["run_vs_bare_ratio"],
    }


def sweep_ours(bars: Any) -> np.ndarray:
    from engine.backtest import IndicatorCache, run_many

    params = [{"fast": f, "slow": s} for f, s in SWEEP_PAIRS]
    return run_many(bars, "sma_cross", params, cache=IndicatorCache(), fee=FEE)


def sweep_bare(bars: Any) -> np.ndarray:
    windows = np.array(sorted({w for pair in SWEEP_PAIRS for w in pair}), dtype=np.int64)
    index = {int(w): k for k, w in enumerate(windows)}
    fast_idx = np.array([index[f] for f, _ in SWEEP_PAIRS], dtype=np.int64)
    slow_idx = np.array([index[s] for _, s in SWEEP_PAIRS], dtype=np.int64)
    return bare_sweep_nb(bars.open, bars.close, windows, fast_idx, slow_idx, FEE, CASH)


def bench_sweep(n: int, repeat: int) -> dict[str, Any]:
    """(b) 174 sma_cross pairs on n bars, each SMA computed once, vs the bare loop."""
    from engine.backtest import METRIC_NAMES
    from engine.data import load

    bars = load(f"synthetic:bars={n},seed=2,timeframe=1m")
    ours = sweep_ours(bars)[:, METRIC_NAMES.index("final_value")]
    bare = sweep_bare(bars)[:, 0]
    same = bool(np.allclose(ours, bare, rtol=1e-9, atol=0.0))
    ours_s, bare_s = best_of_pair(lambda: sweep_ours(bars), lambda: sweep_bare(bars), repeat)
    memory = sweep_peak_rss_mb(n)
    rss = memory["peak_mb"]
    return {
        "bars": n,
        "pairs": len(SWEEP_PAIRS),
        "sweep_s": ours_s,
        "bare_loop_s": bare_s,
        "sweep_vs_bare_ratio": ours_s / bare_s,
        "ns_per_bar_pair": ours_s / (n * len(SWEEP_PAIRS)) * 1e9,
        "peak_rss_mb": rss,
        "rss_before_sweep_mb": memory["before_sweep_mb"],
        "same_result": same,
        "goal_ratio": GOALS["sweep_vs_bare_ratio"],
        "goal_rss_mb": GOALS["sweep_peak_rss_mb"],
        "meets_goal": ours_s / bare_s <= GOALS["sweep_vs_bare_ratio"] and rss < GOALS["sweep_peak_rss_mb"],
    }


def kernel_sweep(
    bars: Any, fill_close: bool, direction: int = 0
) -> tuple[Callable[[], np.ndarray], Callable[[], np.ndarray]]:
    """(ours, bare) over SWEEP_PAIRS with every SMA computed once: ours is the batched
    kernel ``run_many`` calls (every metric, no trade records), bare the final-value loop
    (long only: for another ``direction``, an ``enums.DIR_*``, only ours' time compares)."""
    from engine.backtest.enums import KIND_CROSS, METRIC_NAMES, N_METRICS, TRADE_DTYPE
    from engine.backtest.nb import simulate_many_variant, sma_nb
    from engine.data.timeframes import periods_per_year

    windows = sorted({w for pair in SWEEP_PAIRS for w in pair})
    row = {w: k for k, w in enumerate(windows)}
    mas = np.empty((len(windows), len(bars)))
    for w, k in row.items():
        mas[k] = sma_nb(bars.close, w)
    a_rows = np.array([row[f] for f, _ in SWEEP_PAIRS], dtype=np.int64)
    b_rows = np.array([row[s] for _, s in SWEEP_PAIRS], dtype=np.int64)
    m = len(SWEEP_PAIRS)
    addresses = np.array([mas[k].ctypes.data for k in range(len(windows))], dtype=np.int64)
    zeros, ones = np.zeros(m), np.ones(m)
    per_set = (
        a_rows, b_rows, zeros, zeros, np.full(m, direction, dtype=np.int64), np.full(m, FEE), zeros, ones,
        np.full(m, CASH), zeros, zeros,
    )
    ppy = float(periods_per_year(bars.timeframe))
    metrics = np.empty((m, N_METRICS))
    kernel = simulate_many_variant(fill_close, False, cross_long=direction == 0)
    no_signals = np.zeros(0, dtype=np.bool_)
    no_equity = np.empty(0)
    no_trades = np.empty(0, dtype=TRADE_DTYPE)
    no_bounds = np.empty(0, dtype=np.int64)
    no_blocks = np.empty((0, 0))
    final = np.empty(m)

    def ours() -> np.ndarray:
        kernel(
            bars.open, bars.high, bars.low, bars.close, KIND_CROSS, addresses, *per_set, ppy,
            no_signals, no_equity, no_trades, metrics, no_bounds, no_blocks,
        )  # fmt: skip
        return metrics[:, METRIC_NAMES.index("final_value")]

    def bare() -> np.ndarray:
        bare_final_values_nb(bars.open, bars.close, mas, a_rows, b_rows, fill_close, FEE, CASH, final)
        return final

    return ours, bare


def bench_kernel(n: int, repeat: int) -> dict[str, Any]:
    """(e) The kernel's CPU time per trial over the 174 sma_cross pairs (SMAs computed
    once, every metric) against the bare final-value loop on the same pairs, per fill."""
    from engine.data import load

    bars = load(f"synthetic:bars={n},seed=2,timeframe=1m")
    figures: dict[str, Any] = {"bars": n, "pairs": len(SWEEP_PAIRS)}
    ratios = []
    for fill_close in (True, False):
        ours, bare = kernel_sweep(bars, fill_close)
        same = bool(np.array_equal(ours(), bare()))  # also compiles both
        ours_s, bare_s = best_cpu_of_pair(ours, bare, repeat)
        name = "close" if fill_close else "next_open"
        figures[f"{name}_kernel_us_per_trial"] = ours_s / len(SWEEP_PAIRS) * 1e6
        figures[f"{name}_bare_us_per_trial"] = bare_s / len(SWEEP_PAIRS) * 1e6
        figures[f"{name}_kernel_vs_final_value_ratio"] = ours_s / bare_s
        figures[f"{name}_same_final_values"] = same
        ratios.append(ours_s / bare_s)
    figures["goal_ratio"] = GOALS["kernel_vs_final_value_ratio"]
    figures["meets_goal"] = max(ratios) <= GOALS["kernel_vs_final_value_ratio"]
    return figures


_RSS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from benchmarks.backtest import sweep_ours
    from engine.backtest import run
    from engine.data import load
    def peak_mb():
        # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across execve, so a child
        # would report its parent's peak when that was higher.
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    bars = load(f"synthetic:bars={int(sys.argv[1])},seed=2,timeframe=1m")
    run(bars.slice(0, 1000), "sma_cross", {"fast": 10, "slow": 50}, fee=0.001)  # numba loaded
    before = peak_mb()
    sweep_ours(bars)
    print(json.dumps({"peak_mb": peak_mb(), "before_sweep_mb": before}))
    """
)


def sweep_peak_rss_mb(n: int) -> dict[str, float]:
    """Peak resident memory of a fresh process that loads the bars and runs the
    sweep, and the peak just before the sweep (interpreter, numpy, numba, bars)."""
    command = [sys.executable, "-c", _RSS_SCRIPT, str(n)]
    # The first process may compile (a cold or stale on-disk cache) and LLVM's
    # memory would count; measure the second, which loads machine code from disk.
    subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    return json.loads(done.stdout.strip().splitlines()[-1])


_COMPILE_SCRIPT = textwrap.dedent(
    """
    import json, time
    t0 = time.perf_counter()
    import engine.backtest, engine.data
    from engine.backtest import run
    bars = engine.data.load("synthetic:bars=2000,seed=1,timeframe=1m")
    t1 = time.perf_counter()
    # numba imports its typing/lowering registries (about 250 modules) on the
    # first compile or cache load of any function: imports, timed on their own.
    from numba.core.registry import cpu_target
    cpu_target.target_context.refresh()
    cpu_target.typing_context.refresh()
    t2 = time.perf_counter()
    run(bars, "sma_cross", {"fast": 10, "slow": 50}, fee=0.001)
    t3 = time.perf_counter()
    print(json.dumps({"import_s": t1 - t0, "numba_init_s": t2 - t1, "first_call_s": t3 - t2}))
    """
)


def _fresh_process(cache_dir: str) -> dict[str, float]:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    done = subprocess.run(
        [sys.executable, "-c", _COMPILE_SCRIPT], capture_output=True, text=True, check=True, env=env, timeout=600
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_compile() -> dict[str, Any]:
    """(c) First run() in a fresh process: empty NUMBA_CACHE_DIR, then the warm cache.

    Imports (ours, numpy, numba, and numba's deferred registry imports) are timed
    apart from the first call; ``first_call_s`` is compile (cold) or cache load
    (warm) plus the run itself.
    """
    with tempfile.TemporaryDirectory(prefix="genesis-numba-") as cache_dir:
        cold = _fresh_process(cache_dir)
        warm = min((_fresh_process(cache_dir) for _ in range(3)), key=lambda r: r["first_call_s"])
    return {
        "cold_first_call_s": cold["first_call_s"],
        "warm_first_call_s": warm["first_call_s"],
        "import_s": warm["import_s"],
        "numba_init_s": warm["numba_init_s"],
        "warm_first_call_incl_numba_init_s": warm["first_call_s"] + warm["numba_init_s"],
        "goal_cold_s": GOALS["compile_cold_s"],
        "goal_warm_s": GOALS["compile_warm_s"],
        "meets_goal": cold["first_call_s"] < GOALS["compile_cold_s"]
        and warm["first_call_s"] < GOALS["compile_warm_s"],
    }


def bench_vectorbt(n: int, repeat: int) -> dict[str, Any]:
    """(d) vectorbt on the job of (a), for context (when vectorbt is installed)."""
    try:
        import vectorbt as vbt
    except ImportError:
        return {"installed": False}
    import pandas as pd

    from engine.data import load

    bars = load(f"synthetic:bars={n},seed=1,timeframe=1m")
    close = pd.Series(bars.close)
    open_ = pd.Series(bars.open)

    def job() -> Any:
        fast = vbt.MA.run(close, 10).ma
        slow = vbt.MA.run(close, 50).ma
        entries = fast.vbt.crossed_above(slow).shift(1, fill_value=False)
        exits = fast.vbt.crossed_below(slow).shift(1, fill_value=False)
        portfolio = vbt.Portfolio.from_signals(close, entries, exits, price=open_, fees=FEE, init_cash=CASH, freq="1min")
        return portfolio

    from engine.backtest import run

    agreement = vectorbt_metric_agreement(vbt)
    portfolio = job()  # also compiles vectorbt's kernels
    ours = run(bars, "sma_cross", {"fast": 10, "slow": 50}, fee=FEE).metrics
    seconds = best_of(job, max(1, repeat // 2))
    return {
        "installed": True,
        "bars": n,
        "vectorbt_s": seconds,
        "vectorbt_ns_per_bar": seconds / n * 1e9,
        # the same job: same trades (fees compound the final value towards 0 here)
        "vectorbt_trades": int(portfolio.trades.count()),
        "run_trades": ours.trades,
        "metrics_max_rel_diff_close_fills": agreement,
    }


def vectorbt_metric_agreement(vbt: Any) -> float:
    """Largest relative difference between our metrics and vectorbt's for the same
    signals with close fills and the same fee (20,000 hourly bars); vectorbt
    reports the drawdown as a negative fraction."""
    import pandas as pd

    from engine.backtest import get_strategy, run
    from engine.data import load

    bars = load("synthetic:bars=20000,seed=4,timeframe=1h")
    index = pd.to_datetime(bars.ts, unit="ns")
    entries, exits = get_strategy("sma_cross").signals(bars, {"fast": 10, "slow": 40})
    portfolio = vbt.Portfolio.from_signals(
        pd.Series(bars.close, index=index), pd.Series(entries, index=index), pd.Series(exits, index=index),
        fees=FEE, init_cash=CASH, freq="1h",
    )
    ours = run(bars, "sma_cross", {"fast": 10, "slow": 40}, fee=FEE, fill="close").metrics
    pairs = [
        (ours.final_value, portfolio.final_value()),
        (ours.total_return, portfolio.total_return()),
        (ours.cagr, portfolio.annualized_return()),
        (ours.volatility, portfolio.annualized_volatility()),
        (ours.sharpe, portfolio.sharpe_ratio()),
        (ours.sortino, portfolio.sortino_ratio()),
        (ours.max_drawdown, -portfolio.max_drawdown()),
        (ours.calmar, portfolio.calmar_ratio()),
    ]
    return max(abs(a / float(b) - 1.0) for a, b in pairs)


def run(quick: bool = False) -> dict[str, Any]:
    """Every backtest figure; ``quick`` repeats less and skips vectorbt."""
    repeat = 5 if quick else 15
    figures: dict[str, Any] = {
        "run_1m": bench_run(1_000_000, repeat),
        "sweep_174": bench_sweep(100_000, 5 if quick else 15),
        "kernel_174": bench_kernel(100_000, 5 if quick else 15),
        "compile": bench_compile(),
    }
    if not quick:
        figures["vectorbt_1m"] = bench_vectorbt(1_000_000, repeat)
        if figures["vectorbt_1m"].get("installed"):
            figures["vectorbt_1m"]["vectorbt_vs_run"] = figures["vectorbt_1m"]["vectorbt_s"] / figures["run_1m"]["run_s"]
    figures["meets_goals"] = all(part.get("meets_goal", True) for part in figures.values() if isinstance(part, dict))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, no vectorbt")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    figures = run(quick=args.quick)
    if args.json:
        print(json.dumps(figures))
        return 0
    for section, part in figures.items():
        if not isinstance(part, dict):
            print(f"{section:32s} {part}")
            continue
        for name, value in part.items():
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            print(f"{section + '.' + name:32s} {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
