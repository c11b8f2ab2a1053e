"""Dask backend benchmarks: trials/s against the process backend, and the scatter of 1,000,000 bars.

``run(quick)`` returns a dict of figures with the same-run reference and the
ratio. Run ``python -m benchmarks.dask [--quick]``.

* ``throughput``: one ``sma_cross`` grid study run twice, each in a fresh
  process, ``backend = "process"`` then ``backend = "dask"`` (``scheduler = "local"``:
  a ``LocalCluster`` of 2 worker processes, one thread each), both with 2
  workers. Trials/s end to end (worker start, data shipping, dispatch, store)
  and steady (between 10% and 90% of the trials done, start-up excluded).
  Goal: dask at least 0.85x of process.
* ``scatter``: a ``LocalCluster`` of 2 workers is started, then 1,000,000
  bars (48 MB of columns) are scattered to both workers (``broadcast=True``);
  the first scatter and the median of three more. Goal: under 1 s.

Timings on a shared 2-core box are noisy: repeat before drawing conclusions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.optimize import _run_study, _write_study

FULL = {"bars": 100_000, "fast": (2, 100, 1), "slow": (10, 400, 2)}  # 17,288 trials
QUICK = {"bars": 20_000, "fast": (2, 60, 1), "slow": (10, 200, 2)}  # 4,000 trials
SCATTER_BARS = 1_000_000


def _steady_rate(marks: list[tuple[int, float]], total: int) -> float:
    """Trials/s between 10% and 90% of ``total`` done."""
    inside = [(done, t) for done, t in marks if 0.1 * total <= done <= 0.9 * total]
    if len(inside) < 2 or inside[-1][1] <= inside[0][1]:
        return float("nan")
    (d0, t0), (d1, t1) = inside[0], inside[-1]
    return (d1 - d0) / (t1 - t0)


def _one_study(path: Path, db: Path) -> dict[str, Any]:
    """Run one study in this process; its figures."""
    summary, elapsed, marks = _run_study(path, db, track=True)
    overhead = summary.extra.get("dispatch_overhead")
    return {
        "trials": summary.trials,
        "s": round(elapsed, 3),
        "trials_per_s": round(summary.trials / elapsed, 1),
        "steady_trials_per_s": round(_steady_rate(marks, summary.trials), 1),
        "best": summary.best.key if summary.best is not None else None,
        "dispatch_overhead": round(overhead, 4) if isinstance(overhead, float) else None,
    }


def throughput(workdir: Path, quick: bool) -> dict[str, Any]:
    """Each backend in a fresh process (neither inherits the other's fork server or warm caches)."""
    size = QUICK if quick else FULL
    figures: dict[str, Any] = {"bars": size["bars"], "workers": 2}
    for backend in ("process", "dask"):
        path = _write_study(workdir, f"tp-{backend}", size["bars"], size["fast"], size["slow"], backend=backend,
                            batch=4096)
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.dask", "--one", str(path), str(workdir / f"tp-{backend}.db")],
            capture_output=True, text=True, check=True,
        )
        for name, value in json.loads(done.stdout.strip().splitlines()[-1]).items():
            figures["trials" if name == "trials" else f"{backend}_{name}"] = value
    figures["same_best"] = figures["process_best"] == figures["dask_best"]
    figures["ratio"] = round(figures["dask_trials_per_s"] / figures["process_trials_per_s"], 3)
    figures["steady_ratio"] = round(
        figures["dask_steady_trials_per_s"] / figures["process_steady_trials_per_s"], 3
    )
    figures["goal_ratio"] = 0.85
    return figures


def scatter(quick: bool) -> dict[str, Any]:
    from engine.data import load
    from engine.optimize.backends.dask import DaskBackend
    from engine.optimize.trial import WorkerSetup

    bars = load(f"synthetic:bars={SCATTER_BARS},seed=3,timeframe=1m")

    async def main() -> dict[str, Any]:
        backend = DaskBackend(scheduler="local", workers=2)
        t0 = time.perf_counter()
        await backend.start(bars, WorkerSetup("sma_cross"))
        start_s = time.perf_counter() - t0
        first = backend.scatter_s
        again = []
        try:
            for _ in range(1 if quick else 3):
                await backend._scatter()
                again.append(backend.scatter_s)
        finally:
            await backend.close()
        return {
            "bars": len(bars),
            "megabytes": round(bars.nbytes / 1e6, 1),
            "workers": 2,
            "first_scatter_s": round(first, 3),
            "median_scatter_s": round(statistics.median(again), 3),
            "cluster_start_and_scatter_s": round(start_s, 3),
            "goal_s": 1.0,
        }

    return asyncio.run(main())


def run(quick: bool = False) -> dict[str, Any]:
    """Every dask figure (``quick``: a smaller study, one repeat)."""
    workdir = Path(tempfile.mkdtemp(prefix="genesis-bench-dask-"))
    try:
        return {
            "throughput": throughput(workdir, quick),
            "scatter": scatter(quick),
            "quick": quick,
            "cpus": os.cpu_count(),
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller study, one repeat")
    parser.add_argument("--one", nargs=2, metavar=("STUDY", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_one_study(Path(args.one[0]), Path(args.one[1]))))
        return
    print(json.dumps(run(args.quick), indent=2, default=str))


if __name__ == "__main__":
    main()
