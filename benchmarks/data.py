"""Market-data benchmarks, each against a bare reference measured in the same run.

Figures (``run(quick)`` returns them as a flat dict):

- ``synthetic_*``: ``load("synthetic:bars=N,...")`` (regimes, jumps, bridge
  highs/lows, volume, validation) against a bare numpy GBM close path of the
  same length (one ``standard_normal`` draw, ``cumsum``, ``exp``).
- ``synthetic_fresh_process_s``: the same load as the first call of a new
  process (fresh memory; imports excluded), as one ``genesis backtest`` sees it.
- ``csv_*``: ``load("csv:...")`` (delimiter sniffing, column matching, timestamp
  detection, NaN policy, validation) against a bare ``pandas.read_csv`` of the
  same file.
- ``parquet_*``: ``load("parquet:...")`` against a bare
  ``pyarrow.parquet.read_table(...).to_pandas()``.

Each time is the best of a few repetitions (the machine is shared: timings are
noisy). Run: ``python -m benchmarks.data [--quick] [--json]``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.suite import module_main
from engine.data import load

GOALS = {"synthetic_1m_s": 1.0}


def _best(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _bare_gbm(n: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    sigma = 0.5 * np.sqrt(60 / (365 * 86_400))
    return 100.0 * np.exp(np.cumsum(sigma * rng.standard_normal(n) - 0.5 * sigma * sigma))


def bench_synthetic(n: int, repeat: int) -> dict[str, float]:
    """Seconds to generate ``n`` synthetic bars against the bare GBM reference."""
    spec = f"synthetic:bars={n},seed=1,timeframe=1m"
    load(spec)  # warm imports and allocator
    ours = _best(lambda: load(spec), repeat)
    reference = _best(lambda: _bare_gbm(n), repeat)
    return {
        "synthetic_bars": float(n),
        "synthetic_s": ours,
        "synthetic_ns_per_bar": ours / n * 1e9,
        "synthetic_reference_s": reference,
        "synthetic_ratio": ours / reference,
    }


_FRESH = (
    "import time\nfrom engine.data import load\n"
    "t = time.perf_counter()\nload({spec!r})\nprint(time.perf_counter() - t)\n"
)


def bench_fresh_process(n: int, repeat: int) -> dict[str, float]:
    """The first ``load`` in a new process (what one ``genesis backtest`` pays), imports excluded."""
    code = _FRESH.format(spec=f"synthetic:bars={n},seed=1,timeframe=1m")
    runs = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for _ in range(repeat)
    ]
    return {"synthetic_fresh_process_s": min(runs)}


def _write_files(n: int, folder: Path) -> tuple[Path, Path]:
    bars = load(f"synthetic:bars={n},seed=2,timeframe=1m")
    frame = pd.DataFrame({"timestamp": bars.ts // 1_000_000, **{c: getattr(bars, c) for c in
                                                               ("open", "high", "low", "close", "volume")}})
    csv_path, parquet_path = folder / "bench.csv", folder / "bench.parquet"
    frame.to_csv(csv_path, index=False)
    frame.to_parquet(parquet_path, index=False)
    return csv_path, parquet_path


def bench_files(n: int, repeat: int) -> dict[str, float]:
    """Seconds to import ``n`` rows from CSV and parquet against the bare readers."""
    figures: dict[str, float] = {"file_rows": float(n)}
    with tempfile.TemporaryDirectory(prefix="genesis-bench-data-") as folder:
        csv_path, parquet_path = _write_files(n, Path(folder))
        ours = _best(lambda: load(f"csv:{csv_path}"), repeat)
        reference = _best(lambda: pd.read_csv(csv_path), repeat)
        figures.update(csv_s=ours, csv_reference_s=reference, csv_ratio=ours / reference)
        try:
            import pyarrow.parquet as pq
        except ImportError:
            return figures
        ours = _best(lambda: load(f"parquet:{parquet_path}"), repeat)
        reference = _best(lambda: pq.read_table(parquet_path).to_pandas(), repeat)
        figures.update(parquet_s=ours, parquet_reference_s=reference, parquet_ratio=ours / reference)
    return figures


def run(quick: bool = False) -> dict[str, Any]:
    """All data figures; ``quick`` uses smaller inputs and fewer repetitions."""
    repeat = 3 if quick else 5
    figures: dict[str, Any] = {}
    figures.update(bench_synthetic(1_000_000, repeat))
    figures.update(bench_fresh_process(1_000_000, repeat))
    figures.update(bench_files(200_000 if quick else 1_000_000, 2 if quick else 3))
    figures["goal_synthetic_1m_s"] = GOALS["synthetic_1m_s"]
    figures["synthetic_meets_goal"] = figures["synthetic_s"] < GOALS["synthetic_1m_s"]
    return figures


def main(argv: list[str] | None = None) -> int:
    return module_main(run, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
