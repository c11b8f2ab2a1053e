"""User strategies against the built-ins: ``sma_cross`` written with ``engine.strategy.ta``
in a user file, against the built-in fused ``sma_cross``, on the same data in the same run.

Figures (ratios: user time / built-in time): one backtest on 1M bars (goal 1.5x), the
174-pair sweep on 100k bars through ``run_many`` (goal 2x), the 17,288-trial grid study on
100k bars on the process backend (goal 2x; ``--quick`` runs the smaller grid of
``benchmarks.optimize``), and the first call of the user strategy in a fresh process with a
warm numba cache (goal under 0.3 s beyond imports).
``python -m benchmarks.strategies [--quick] [--json]``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import figures_main
from benchmarks.backtest import best_of_pair
from benchmarks.optimize import HEADLINE, QUICK_HEADLINE, _run_study, _write_study
from engine.backtest import IndicatorCache, run_many
from engine.backtest import run as backtest
from engine.data import load
from engine.strategy.loader import StrategySource, load_strategy

GOALS = {"backtest_1m_ratio": 1.5, "sweep_174_ratio": 2.0, "study_ratio": 2.0, "first_call_warm_s": 0.3}

USER_SMA = '''\
from engine.strategy import Param, strategy, ta


@strategy(params=[Param.int("fast", 10, 2, 200), Param.int("slow", 50, 5, 500)], constraints=["fast < slow"],
          lookback="slow")
def sma_cross(bars, fast, slow):
    """The built-in sma_cross, written with ta."""
    f, s = ta.sma(bars.close, fast), ta.sma(bars.close, slow)
    return ta.crossed_above(f, s), ta.crossed_below(f, s)
'''

FIRST_CALL = """
import sys, time
from engine.backtest import run
from engine.data import load
from engine.strategy.loader import StrategySource, load_strategy
bars = load("synthetic:bars=1000,seed=1")
t0 = time.perf_counter()
strategy = load_strategy(StrategySource.read(sys.argv[1]), "sma_cross")
run(bars, strategy, {"fast": 10, "slow": 50})
print(time.perf_counter() - t0)
"""


def _pairs() -> list[dict[str, int]]:
    """The 174 (fast, slow) pairs of the README's sweep: fast 5..50 step 5 x slow 20..300 step 10, fast < slow."""
    return [{"fast": f, "slow": s} for f in range(5, 51, 5) for s in range(20, 301, 10) if f < s][:174]


def study_figures(folder: Path, user_file: Path, quick: bool) -> dict[str, Any]:
    """The headline grid study twice, built-in then user ``sma_cross``, same data and backend."""
    shape = QUICK_HEADLINE if quick else HEADLINE
    builtin = _write_study(folder, "builtin", shape["bars"], shape["fast"], shape["slow"])
    user = _write_study(folder, "user", shape["bars"], shape["fast"], shape["slow"])
    text = user.read_text()
    user.write_text(text.replace('name = "sma_cross"', f'name = "sma_cross"\nfile = "{user_file.name}"', 1))
    builtin_times, user_times = [], []
    for round_ in range(2):  # alternated, best of two: the first run of each also warms its workers' caches
        builtin_summary, seconds, _ = _run_study(builtin, folder / f"builtin-{round_}.db")
        builtin_times.append(seconds)
        user_summary, seconds, _ = _run_study(user, folder / f"user-{round_}.db")
        user_times.append(seconds)
    builtin_s, user_s = min(builtin_times), min(user_times)
    return {
        "study_trials": builtin_summary.trials,
        "study_user_s": user_s,
        "study_builtin_s": builtin_s,
        "study_ratio": user_s / builtin_s,
        "study_same_best": (user_summary.best is not None and builtin_summary.best is not None
                            and user_summary.best.objective == builtin_summary.best.objective
                            and user_summary.trials == builtin_summary.trials),
    }


def run_figures(quick: bool = False) -> dict[str, Any]:
    repeat = 3 if quick else 7
    folder = Path(tempfile.mkdtemp(prefix="genesis-bench-"))
    path = folder / "user_sma.py"
    path.write_text(USER_SMA)
    user = load_strategy(StrategySource.read(path), "sma_cross")
    params = {"fast": 10, "slow": 50}

    big = load("synthetic:bars=1000000,seed=1")
    same = backtest(big, user, params, fee=0.001).metrics == backtest(big, "sma_cross", params, fee=0.001).metrics
    user_s, builtin_s = best_of_pair(
        lambda: backtest(big, user, params, fee=0.001), lambda: backtest(big, "sma_cross", params, fee=0.001), repeat
    )
    bars = load("synthetic:bars=100000,seed=1")
    pairs = _pairs()
    run_many(bars, user, pairs[:2], fee=0.001)  # compiled and loaded before timing
    sweep_user_s, sweep_builtin_s = best_of_pair(
        lambda: run_many(bars, user, pairs, fee=0.001, cache=IndicatorCache()),
        lambda: run_many(bars, "sma_cross", pairs, fee=0.001, cache=IndicatorCache()),
        max(1, repeat // 2),
    )
    first_calls = []
    for _ in range(2):  # the first fills numba's disk cache for this content; the second reads it
        out = subprocess.run([sys.executable, "-c", FIRST_CALL, str(path)], capture_output=True, text=True,
                             timeout=300, check=True)
        first_calls.append(float(out.stdout.strip()))
    figures = {
        "backtest_1m_user_s": user_s,
        "backtest_1m_builtin_s": builtin_s,
        "backtest_1m_ratio": user_s / builtin_s,
        "backtest_1m_same_metrics": bool(same),
        "sweep_174_user_s": sweep_user_s,
        "sweep_174_builtin_s": sweep_builtin_s,
        "sweep_174_ratio": sweep_user_s / sweep_builtin_s,
        **study_figures(folder, path, quick),
        "first_call_cold_s": first_calls[0],
        "first_call_warm_s": first_calls[1],
    }
    figures["meets_goals"] = (
        figures["backtest_1m_ratio"] <= GOALS["backtest_1m_ratio"]
        and figures["sweep_174_ratio"] <= GOALS["sweep_174_ratio"]
        and figures["study_ratio"] <= GOALS["study_ratio"]
        and figures["first_call_warm_s"] <= GOALS["first_call_warm_s"]
        and figures["study_same_best"]
        and figures["backtest_1m_same_metrics"]
    )
    return figures


def run(quick: bool = False) -> dict[str, Any]:
    """Every figure (the suite calls each module's ``run(quick)``)."""
    return run_figures(quick)


def main(argv: list[str] | None = None) -> int:
    return figures_main(__doc__, run_figures, argv)


if __name__ == "__main__":
    raise SystemExit(main())
