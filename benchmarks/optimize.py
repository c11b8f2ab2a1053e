"""Optimizer benchmarks: studies end to end against a bare numba loop, scaling, store, memory.

``run(quick)`` returns a dict of figures, each with the reference measured in
the same run and the ratio. Run ``python -m benchmarks.optimize [--quick]``.

* ``headline``: the ``sma_cross`` grid fast 2..100 step 1, slow 10..400 step 2,
  fast < slow (17,288 trials) on 100,000 bars, as a study end to end (worker
  start, dispatch, store, the default validation) against a bare two-thread numba
  ``prange`` loop calling the same specialised backtest kernel (next-open
  fills, no stops) over the same pairs, each moving average computed once
  (timed). The bare loop runs before and after the study; the ratio is
  against the faster of the two. Goal: the study within 1.5x. ``command_s``:
  the same grid as ``genesis run --headless`` with its report, process start to
  exit (``command_ratio`` against the bare loop; goal 1.5x). Issue 20's floor,
  ``final_value_s``: a bare loop computing only each pair's final value (two
  threads, SMAs once, ``benchmarks.backtest.final_value_loop``);
  ``command_vs_final_value`` is its "done when" figure (goal 1.5x). ``--grid``
  runs the figure on another grid (``python -m benchmarks.optimize --only
  headline --grid 3,150,1:20,500,3:50000:close``).
* ``scaling``: trials/s of a 5,000-trial grid on 100,000 bars with the
  ``process`` backend (2 workers) against ``inline``, after a tiny warm-up
  study (so the first backend measured does not carry this process's
  one-time costs), the two alternated for ``SCALING_ROUNDS`` rounds and the
  best round of each kept. ``ratio`` is end to end (worker start included),
  ``steady_ratio`` between 10% and 90% done. Goal: >= 1.8x.
* ``store``: trials persisted per second through the batched writer, with a
  column per backend (``sqlite``, ``postgres``: a local server, or
  ``GENESIS_BENCH_POSTGRES_URL``): trials/s (goal >= 50,000/s on SQLite,
  >= 20,000/s on PostgreSQL), seconds per 1,000 trials committed at 10k and
  at 200k stored (goal: flat), and the incremental reader's seconds per 1,000
  trials read from the start and from the end of the study.
* ``memory``: peak resident memory of a 200,000-trial study with top-20
  artifacts (the orchestrating process, and the whole process tree).
  Goal: < 300 MB for the orchestrator.
* ``flatness``: wall time per 1,000 trials around 10k and around 200k stored
  trials in that study. Goal: flat (ratio near 1).

* ``scale``: a random study of 1,000,000 ``sma_cross`` points on 10,000 bars
  (``--scale N`` sets the trials; ``--quick`` skips it unless given) against
  the bare loop over the stored pairs: per-trial overhead in us (goal < 20),
  the orchestrator's CPU per trial, peak RSS (goal < 1 GB) and seconds per
  1,000 trials early and late (goal: flat).

* ``short``: a 50-trial random study on 100,000 bars (process backend, 2 workers,
  default report) as the ``genesis run --headless`` command, process start to
  exit (best of ``SHORT_ROUNDS``), against the bare loop over its stored pairs;
  ``numba_in_driver`` says whether the driver process loaded numba. Goal: < 1 s. ``command_cpu_s``: the
  CPU seconds of the command, its fork server and its workers (collected by a subreaper on Linux;
  ``command_cpu_covers`` says what was counted), a companion to the wall that a loaded box inflates.
  Commands run with bytecode caching on (as an installed package) and their output read to the end.

Every study figure also gives the bare loop over the study's own (stored)
pairs, measured in the same run, and the ratio to it.

Timings on a shared 2-core box are noisy: repeat before drawing conclusions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

HEADLINE = {"bars": 100_000, "fast": (2, 100, 1), "slow": (10, 400, 2)}
#: Rounds of the scaling figure (inline then process, each round).
SCALING_ROUNDS = 2
QUICK_HEADLINE = {"bars": 20_000, "fast": (2, 60, 1), "slow": (10, 200, 2)}

STUDY = """\
name = "{name}"

[data]
spec = "synthetic:bars={bars},seed=7,timeframe=1m"

[strategy]
name = "sma_cross"

[space]
fast = {{ int = [{f0}, {f1}], step = {fs} }}
slow = {{ int = [{s0}, {s1}], step = {ss} }}
{extra}constraints = ["fast < slow"]

[backtest]
{fee}
[search]
sampler = "{sampler}"
{trials}seed = 1
objective = "sharpe"

[execution]
backend = "{backend}"
workers = {workers}
batch_size = {batch}
checkpoint_every = {checkpoint_every}
checkpoint_interval_s = 1.0
artifacts = "{artifacts}"
"""


def _per_thousand(marks: Sequence[tuple[int, float]], start: int, window: int) -> float | None:
    """Seconds per 1,000 trials over ``[start, start + window]`` trials done, from ``(done, t)`` marks."""
    before = [(done, t) for done, t in marks if done <= start]
    after = [(done, t) for done, t in marks if done >= start + window]
    if not before or not after:
        return None
    (d0, t0), (d1, t1) = before[-1], after[0]
    return (t1 - t0) / ((d1 - d0) / 1_000)


def _pairs(fast: tuple[int, int, int], slow: tuple[int, int, int]) -> list[tuple[int, int]]:
    return [
        (f, s)
        for f in range(fast[0], fast[1] + 1, fast[2])
        for s in range(slow[0], slow[1] + 1, slow[2])
        if f < s
    ]


def _write_study(directory: Path, name: str, bars: int, fast: tuple, slow: tuple, *, backend: str = "process",
                 workers: int = 2, trials: int | None = None, batch: int = 4096,
                 artifacts: str = "top:20", sampler: str = "grid", fees: tuple[float, ...] = (),
                 checkpoint_every: int | None = None, fill: str = "next_open") -> Path:
    """A study file; ``fees``: a ``fee`` choice dimension in the space instead of the fixed 0.001."""
    path = directory / f"{name}.toml"
    path.write_text(
        STUDY.format(
            name=name, bars=bars, f0=fast[0], f1=fast[1], fs=fast[2], s0=slow[0], s1=slow[1], ss=slow[2],
            trials="" if trials is None else f"trials = {trials}\n", backend=backend, workers=workers,
            batch=batch, checkpoint_every=checkpoint_every or max(500, batch // 4), artifacts=artifacts, sampler=sampler,
            extra=f"fee = {{ choice = {list(fees)} }}\n" if fees else "",
            fee=f'fill = "{fill}"\n' + ("" if fees else "fee = 0.001\n"),
        )
    )
    return path


class _PeakRss:
    """Samples resident memory and CPU time of this process and its descendants in a thread.

    CPU seconds are a contention-proof companion to wall time on a shared box.
    """

    def __init__(self, period_s: float = 0.05) -> None:
        import psutil

        self._process = psutil.Process()
        self.period_s = period_s
        self.own = 0
        self.tree = 0
        self._cpu: dict[int, float] = {}
        # Descendants alive before (the fork server of an earlier study): count only what they spend now.
        self._baseline: dict[int, float] = {}
        for child in self._process.children(recursive=True):
            try:
                times = child.cpu_times()
                self._baseline[child.pid] = times.user + times.system
            except psutil.Error:
                pass
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._sampler_cpu = 0.0

    @property
    def children_cpu_s(self) -> float:
        """CPU seconds of every descendant seen (workers, the fork server)."""
        return sum(cpu - self._baseline.get(pid, 0.0) for pid, cpu in self._cpu.items())

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                own = self._process.memory_info().rss
                tree = own
                for child in self._process.children(recursive=True):
                    try:
                        tree += child.memory_info().rss
                        times = child.cpu_times()
                        self._cpu[child.pid] = max(self._cpu.get(child.pid, 0.0), times.user + times.system)
                    except psutil.Error:
                        pass
                self.own = max(self.own, own)
                self.tree = max(self.tree, tree)
            except psutil.Error:
                pass
            self._sampler_cpu = time.thread_time()
            self._stop.wait(self.period_s)

    def sampler_cpu_s(self) -> float:
        """CPU seconds this sampling thread has spent (not the study's: scale() takes it out)."""
        if self._thread.ident is None:
            return 0.0
        try:
            return time.clock_gettime(time.pthread_getcpuclockid(self._thread.ident))
        except (OSError, ValueError):  # ended, or no per-thread clock here
            return self._sampler_cpu

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _run_study(
    path: Path, db: Path, *, track: bool = False, cpu: list[tuple[int, float, float]] | None = None,
    exclude: Any = None,
) -> tuple[Any, float, list[tuple[int, float]]]:
    """Run a study in this process: ``(summary, wall seconds, [(done, seconds)])``; ``cpu`` (with
    ``track``) collects ``(done, process CPU s, main-thread CPU s)`` at each progress report, the
    process CPU less ``exclude()`` (a measuring thread's own CPU seconds) when given."""
    from engine.optimize import Study

    marks: list[tuple[int, float]] = []
    start = time.perf_counter()

    def on_progress(p: Any) -> None:
        marks.append((p.done, time.perf_counter() - start))
        if cpu is not None:
            cpu.append((p.done, time.process_time() - (exclude() if exclude else 0.0), time.thread_time()))

    async def main() -> Any:
        study = Study.from_file(path, db=db)
        return await study.run(progress_callback=on_progress if track else None, progress_interval_s=0.05)

    summary = asyncio.run(main())
    return summary, time.perf_counter() - start, marks


# --------------------------------------------------------------------------- the bare reference


def _bare_kernel(fill_close: bool = False) -> Any:
    from numba import njit, prange

    from engine.backtest.nb import simulate_variant

    # The kernel specialised for the study's configuration (next-open fills, no
    # stops), as the study's batched kernel uses: the strictest reference.
    simulate = simulate_variant(fill_close, False, cross_long=True)

    @njit(parallel=True, cache=False)
    def bare_nb(open_, high, low, close, smas, fast_rows, slow_rows, kind, fee, ppy, no_signals, no_equity,
                no_trades, out):  # pragma: no cover - compiled
        for i in prange(fast_rows.shape[0]):
            simulate(
                open_, high, low, close, kind, smas[fast_rows[i]], smas[slow_rows[i]], 0.0, 0.0,
                no_signals, no_signals, fill_close, 0, fee, 0.0, 1.0, 10_000.0, 0.0, 0.0, ppy, no_equity, no_trades,
                out[i],
            )
        return out

    return bare_nb


def bare_loop(bars: Any, pairs: list[tuple[int, int]], threads: int = 2,
              fill_close: bool = False) -> tuple[float, np.ndarray]:
    """Seconds for the bare loop over ``pairs`` on ``threads`` threads (SMAs included, compile excluded)."""
    import numba

    from engine.backtest.enums import KIND_CROSS, N_METRICS, TRADE_DTYPE
    from engine.backtest.indicators import sma
    from engine.data.timeframes import periods_per_year

    kernel = _bare_kernel(fill_close)
    windows = sorted({w for pair in pairs for w in pair})
    row = {w: i for i, w in enumerate(windows)}
    fast_rows = np.array([row[f] for f, _ in pairs], dtype=np.int64)
    slow_rows = np.array([row[s] for _, s in pairs], dtype=np.int64)
    ppy = float(periods_per_year(bars.timeframe))
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    # compile on a tiny slice first
    small = bars.slice(0, 500)
    smas_small = np.stack([sma(small.close, w) for w in windows[:2]])
    empties = (np.zeros(0, np.bool_), np.empty(0), np.empty(0, dtype=TRADE_DTYPE))
    kernel(small.open, small.high, small.low, small.close, smas_small, np.zeros(2, np.int64), np.ones(2, np.int64),
           KIND_CROSS, 0.001, ppy, *empties, np.empty((2, N_METRICS)))
    start = time.perf_counter()
    smas = np.stack([sma(bars.close, w) for w in windows])
    out = np.empty((len(pairs), N_METRICS))
    kernel(bars.open, bars.high, bars.low, bars.close, smas, fast_rows, slow_rows, KIND_CROSS, 0.001, ppy, *empties,
           out)
    return time.perf_counter() - start, out


# --------------------------------------------------------------------------- the figures


def _steady_rate(marks: list[tuple[int, float]], total: int) -> float | None:
    """Trials per second between 10% and 90% done (start-up and tail excluded)."""
    inside = [(done, t) for done, t in marks if 0.1 * total <= done <= 0.9 * total]
    if len(inside) < 2 or inside[-1][1] <= inside[0][1]:
        return None
    return (inside[-1][0] - inside[0][0]) / (inside[-1][1] - inside[0][1])


def headline(workdir: Path, quick: bool, shape: dict[str, Any] | None = None) -> dict[str, Any]:
    """The headline grid (or ``shape``: bars, fast and slow ranges, fill) as a study and as the command.

    ``final_value_s`` is issue 20's floor: ``benchmarks.backtest.final_value_loop`` over the same
    pairs (final values only, two threads, SMAs once), before and after, the faster kept;
    ``command_vs_final_value`` is the figure its "done when" names (goal 1.5x)."""
    from benchmarks.backtest import final_value_loop
    from engine.data import load

    shape = {"fill": "next_open", **(shape or (QUICK_HEADLINE if quick else HEADLINE))}
    fill_close = shape["fill"] == "close"
    pairs = _pairs(shape["fast"], shape["slow"])
    bars = load(f"synthetic:bars={shape['bars']},seed=7,timeframe=1m")
    # The references run before and after the study (the box is shared: load drifts);
    # the ratios are taken against the faster run of each, the stricter reading.
    final_before_s, finals = final_value_loop(bars, pairs, fill_close)
    cpu0 = time.process_time()
    bare_before_s, bare_metrics = bare_loop(bars, pairs, threads=2, fill_close=fill_close)
    bare_cpu = time.process_time() - cpu0
    path = _write_study(workdir, "headline", shape["bars"], shape["fast"], shape["slow"], fill=shape["fill"])
    cpu0 = time.process_time()
    with _PeakRss() as tree:
        summary, study_s, marks = _run_study(path, workdir / "headline.db", track=True)
    study_cpu = time.process_time() - cpu0 + tree.children_cpu_s
    # The same grid as the command a cron job runs: process start to exit, the report included.
    command_s, command_cpu, numba_in_driver, cpu_covers = _command(workdir, path, "headline-command")
    cpu0 = time.process_time()
    bare_after_s, _ = bare_loop(bars, pairs, threads=2, fill_close=fill_close)
    bare_cpu = min(bare_cpu, time.process_time() - cpu0)
    bare_s = min(bare_before_s, bare_after_s)
    final_s = min(final_before_s, final_value_loop(bars, pairs, fill_close)[0])
    steady = _steady_rate(marks, len(pairs))
    assert summary.trials == len(pairs), (summary.trials, len(pairs))
    # Same answers: the study's best Sharpe equals the bare loop's.
    from engine.backtest.enums import M_FINAL_VALUE, M_SHARPE

    bare_best = float(np.nanmax(bare_metrics[:, M_SHARPE]))
    return {
        "trials": len(pairs),
        "bars": shape["bars"],
        "grid": {"fast": list(shape["fast"]), "slow": list(shape["slow"]), "fill": shape["fill"]},
        "final_value_s": round(final_s, 3),
        "command_vs_final_value": round(command_s / final_s, 3),
        "command_meets_goal": command_s / final_s <= 1.5,  # issue 20's "done when"
        "study_vs_final_value": round(study_s / final_s, 3),
        "kernel_loop_vs_final_value": round(bare_s / final_s, 3),
        "same_final_values": bool(np.array_equal(finals, bare_metrics[:, M_FINAL_VALUE])),
        "study_s": round(study_s, 3),
        "study_trials_per_s": round(len(pairs) / study_s, 1),
        "bare_two_thread_loop_s": round(bare_s, 3),
        "bare_before_s": round(bare_before_s, 3),
        "bare_after_s": round(bare_after_s, 3),
        "ratio": round(study_s / bare_s, 3),
        "goal_ratio": 1.5,
        "study_steady_trials_per_s": None if steady is None else round(steady, 1),
        "bare_trials_per_s": round(len(pairs) / bare_s, 1),
        "steady_ratio": None if not steady else round((len(pairs) / bare_s) / steady, 3),
        "startup_s": round(marks[1][1], 3) if len(marks) > 1 else None,
        "dispatch_overhead": summary.extra.get("dispatch_overhead"),
        "study_cpu_s": round(study_cpu, 3),
        "bare_cpu_s": round(bare_cpu, 3),
        "cpu_ratio": round(study_cpu / bare_cpu, 3) if bare_cpu > 0 else None,
        "command_s": round(command_s, 3),
        "command_ratio": round(command_s / bare_s, 3),
        "command_cpu_s": round(command_cpu, 3),
        "command_cpu_covers": cpu_covers,
        "command_numba_in_driver": numba_in_driver,
        "best_sharpe_study": summary.best.objective if summary.best else None,
        "best_sharpe_bare": bare_best,
    }


def scaling(workdir: Path, quick: bool) -> dict[str, Any]:
    bars = 20_000 if quick else 100_000
    trials = 1_000 if quick else 5_000
    fast, slow = (2, 100, 1), (10, 400, 2)
    figures: dict[str, Any] = {"trials": trials, "bars": bars, "rounds": SCALING_ROUNDS}
    # This process's one-time costs (imports, loading the compiled kernels, the
    # store's first open) would otherwise land on whichever backend runs first.
    warm = _write_study(workdir, "scale-warm", 2_000, fast, slow, backend="inline", trials=50, batch=64)
    _run_study(warm, workdir / "scale-warm.db")
    runs: dict[str, list[tuple[float, float | None, float]]] = {"inline": [], "process": []}
    for round_ in range(SCALING_ROUNDS):  # alternate the backends: drifting load hits both alike
        for backend in ("inline", "process"):
            path = _write_study(workdir, f"scale-{backend}-{round_}", bars, fast, slow, backend=backend,
                                trials=trials, batch=1024)
            cpu0 = time.process_time()
            with _PeakRss() as tree:
                summary, elapsed, marks = _run_study(path, workdir / f"scale-{backend}-{round_}.db", track=True)
            cpu = time.process_time() - cpu0 + tree.children_cpu_s
            runs[backend].append((elapsed, _steady_rate(marks, summary.trials), cpu))
    for backend, measured in runs.items():  # the best round of each (the least disturbed)
        elapsed = min(e for e, _, _ in measured)
        steadies = [s for _, s, _ in measured if s]
        figures[f"{backend}_cpu_s"] = round(min(c for _, _, c in measured), 3)
        figures[f"{backend}_steady_trials_per_s"] = round(max(steadies), 1) if steadies else None
        figures[f"{backend}_s"] = round(elapsed, 3)
        figures[f"{backend}_all_s"] = [round(e, 3) for e, _, _ in measured]
        figures[f"{backend}_trials_per_s"] = round(trials / elapsed, 1)
    figures["ratio"] = round(figures["process_trials_per_s"] / figures["inline_trials_per_s"], 3)
    if figures["inline_steady_trials_per_s"] and figures["process_steady_trials_per_s"]:
        figures["steady_ratio"] = round(
            figures["process_steady_trials_per_s"] / figures["inline_steady_trials_per_s"], 3
        )
    figures["goal_ratio"] = 1.8
    bare_s, _ = _bare_on_stored(workdir / "scale-process-0.db", bars)
    figures["bare_two_thread_loop_s"] = round(bare_s, 3)
    for backend in ("inline", "process"):
        figures[f"{backend}_bare_ratio"] = round(figures[f"{backend}_s"] / bare_s, 3)
    return figures


def _bench_records(n: int) -> list[Any]:
    from engine.store.records import TrialRecord, TrialState

    metric_names = ("final_value", "total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown",
                    "calmar", "trades", "win_rate", "profit_factor", "avg_trade", "exposure")
    now = time.time()
    return [
        TrialRecord(
            number=i, key=f"{i * 2654435761 % (1 << 64):016x}", params={"fast": i % 99 + 2, "slow": i % 391 + 10},
            state=TrialState.COMPLETE, metrics={m: (i % 1000) / 7.0 for m in metric_names}, objective=(i % 1000) / 7.0,
            started=now, duration_s=0.0003, worker="w0", step=0, batch=i // 1024 + 1,
        )
        for i in range(n)
    ]


#: Samples averaged for each "time per 1,000 trials" and reader figure.
STORE_SAMPLES = 5


async def _store_profile(db: Any, records: list[Any], marks: tuple[int, int]) -> dict[str, Any]:
    """One backend's store figures: batched throughput, s per 1,000 trials at two sizes, the reader's cost.

    Trials arrive in chunks of 256 as from workers (the batched writer commits
    every 4,096); at each mark, ``STORE_SAMPLES`` chunks of 1,000 are each
    added and committed on their own and timed, and the incremental reader
    reads 1,000 trials from the start and 1,000 from the end of the study.
    """
    from engine.store.factory import open_study_store

    store = await open_study_store(db, batch_size=4096, batch_interval_s=60.0)
    study = await store.create_study("store-bench", "x")
    bulk_s = 0.0
    bulk_n = 0
    stored = 0
    per_1000: list[float] = []
    reader: list[tuple[float, float]] = []
    for mark in marks:
        fill = records[stored : mark - STORE_SAMPLES * 1000]
        start = time.perf_counter()
        for i in range(0, len(fill), 256):
            await store.add_trials(study.id, fill[i : i + 256])
        await store.flush()
        bulk_s += time.perf_counter() - start
        bulk_n += len(fill)
        stored += len(fill)
        samples = []
        for _ in range(STORE_SAMPLES):
            chunk = records[stored : stored + 1000]
            start = time.perf_counter()
            await store.add_trials(study.id, chunk)
            await store.flush()
            samples.append(time.perf_counter() - start)
            stored += len(chunk)
        per_1000.append(sum(samples) / len(samples))
        first = (await store.trials_after(study.id, 0, limit=1))[0].rowid - 1
        last = await store.trials_after(study.id, first + stored - 1001, limit=1)
        head, tail = [], []
        for _ in range(STORE_SAMPLES):
            start = time.perf_counter()
            page = await store.trials_after(study.id, first, limit=1000)
            head.append(time.perf_counter() - start)
            start = time.perf_counter()
            end_page = await store.trials_after(study.id, last[0].rowid if last else first, limit=1000)
            tail.append(time.perf_counter() - start)
            assert len(page) == 1000 and len(end_page) == 1000
        reader.append((sum(head) / len(head), sum(tail) / len(tail)))
    commits = store.commits
    await store.close()
    return {
        "trials": stored,
        "trials_per_s": round(bulk_n / bulk_s),
        "transactions": commits,
        f"s_per_1000_at_{marks[0] // 1000}k": round(per_1000[0], 4),
        f"s_per_1000_at_{marks[1] // 1000}k": round(per_1000[1], 4),
        "flatness_ratio": round(per_1000[1] / per_1000[0], 3),
        f"reader_s_per_1000_at_{marks[1] // 1000}k_first": round(reader[1][0], 4),
        f"reader_s_per_1000_at_{marks[1] // 1000}k_last": round(reader[1][1], 4),
    }


def _postgres_for_bench() -> tuple[str | None, Any]:
    """A URL to benchmark against and a cleanup: ``GENESIS_BENCH_POSTGRES_URL``/``GENESIS_TEST_POSTGRES_URL``,
    else a throwaway local server with its durable defaults (fsync on)."""
    url = os.environ.get("GENESIS_BENCH_POSTGRES_URL") or os.environ.get("GENESIS_TEST_POSTGRES_URL")
    from tests import pg_server  # the repository's own launcher (run from the checkout)

    server = None
    if not url:
        server = pg_server.start(fast=False)
        url = server.url()
    schema = pg_server.new_schema(url)

    def cleanup() -> None:
        pg_server.drop_schema(url, schema)
        if server is not None:
            server.stop()

    return pg_server.with_search_path(url, schema), cleanup


def store_throughput(workdir: Path, quick: bool) -> dict[str, Any]:
    """The batched writer's trials/s (SQLite's at the top level), and a column per backend."""
    marks = (10_000, 50_000) if quick else (10_000, 200_000)
    records = _bench_records(marks[1])
    sqlite = asyncio.run(_store_profile(workdir / "store.db", records, marks))
    try:
        url, cleanup = _postgres_for_bench()
    except Exception as error:  # no server here: say so in the figure, not a crash
        postgres: dict[str, Any] = {"error": f"{type(error).__name__}: {error}"}
    else:
        try:
            postgres = asyncio.run(_store_profile(url, records, marks))
        finally:
            cleanup()
    postgres["goal_trials_per_s"] = 20_000
    return {"trials": sqlite["trials"], "trials_per_s": sqlite["trials_per_s"], "transactions": sqlite["transactions"],
            "goal_trials_per_s": 50_000, "sqlite": sqlite, "postgres": postgres}


def memory_and_flatness(workdir: Path, quick: bool) -> dict[str, Any]:
    trials = 20_000 if quick else 200_000
    bars = 2_000 if quick else 5_000
    # fast 2..500 x slow 3..1000 holds ~374k feasible pairs; the budget stops at `trials`.
    path = _write_study(workdir, "memory", bars, (2, 500, 1), (3, 1000, 1), trials=trials, batch=4096)
    with _PeakRss() as rss:
        summary, elapsed, marks = _run_study(path, workdir / "memory.db", track=True)
    window = trials // 20  # 10,000 trials at full size: single batch ends do not dominate

    early, late = _per_thousand(marks, window // 2, window), _per_thousand(marks, trials - window - 1, window)
    bare_s, _ = _bare_on_stored(workdir / "memory.db", bars)
    return {
        "trials": summary.trials,
        "bars": bars,
        "seconds": round(elapsed, 3),
        "bare_two_thread_loop_s": round(bare_s, 3),
        "bare_ratio": round(elapsed / bare_s, 3),
        "peak_rss_orchestrator_mb": round(rss.own / 2**20, 1),
        "peak_rss_tree_mb": round(rss.tree / 2**20, 1),
        "goal_rss_mb": 300,
        "s_per_1000_at_10k" if not quick else "s_per_1000_early": None if early is None else round(early, 4),
        "s_per_1000_at_200k" if not quick else "s_per_1000_late": None if late is None else round(late, 4),
        "flatness_ratio": None if not early or not late else round(late / early, 3),
    }


#: The scale study: random ``sma_cross`` points on 10,000 bars; fast 2..500 x slow 3..1000 x four fees
#: is ~1.5M feasible points (the fee changes no kernel's cost, so the bare loop runs at 0.001).
#: The store commits every 4,096 trials (or every second): with a random 64-bit key per trial, a
#: commit costs about one index page per row at a million rows unless it takes thousands of them.
SCALE: dict[str, Any] = {"bars": 10_000, "fast": (2, 500, 1), "slow": (3, 1000, 1), "fees": (0.0005, 0.001, 0.0015, 0.002),
         "trials": 1_000_000, "checkpoint_every": 4096}


def _stored_pairs(db: Path) -> list[tuple[int, int]]:
    """Every stored trial's ``(fast, slow)``, in trial order (the bare loop runs the same pairs)."""
    import sqlite3

    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT params FROM trials ORDER BY number").fetchall()
    return [(params["fast"], params["slow"]) for params in (json.loads(row[0]) for row in rows)]


def _bare_on_stored(db: Path, bars: int) -> tuple[float, float]:
    """The bare loop's wall and CPU seconds over a study's stored pairs (on the benchmarks' synthetic bars)."""
    from engine.data import load

    data, pairs = load(f"synthetic:bars={bars},seed=7,timeframe=1m"), _stored_pairs(db)
    cpu0 = time.process_time()
    wall = bare_loop(data, pairs, threads=2)[0]
    return wall, time.process_time() - cpu0


def scale(workdir: Path, quick: bool, trials: int | None = None) -> dict[str, Any]:
    """A random study of ``trials`` (1M; quick: 20k) points on 10,000 bars against the bare loop on its pairs.

    ``overhead_us_per_trial``: (study wall - bare loop wall) per trial, the cost of
    dispatch, store, sampler and bookkeeping on top of the kernels (goal < 20 us);
    ``orchestrator_cpu_us_per_trial``: this process's CPU per trial (the same costs,
    proof against a loaded box, plus start-up, validation and the report);
    ``loop_cpu_us_per_trial``: the same over the trial loop only (from 5% to
    95% of the trials reported), and ``loop_event_loop_cpu_us_per_trial`` its event-loop
    thread's share (the rest is the store's writer thread). ``s_per_1000`` early
    (5%) and late (95%): goal flat.
    """
    count: int = trials or (20_000 if quick else SCALE["trials"])
    path = _write_study(workdir, "scale", SCALE["bars"], SCALE["fast"], SCALE["slow"], trials=count, batch=4096,
                        sampler="random", fees=SCALE["fees"], checkpoint_every=SCALE["checkpoint_every"])
    db = workdir / "scale.db"
    cpu_marks: list[tuple[int, float, float]] = []
    cpu0 = time.process_time()
    with _PeakRss() as rss:
        summary, study_s, marks = _run_study(path, db, track=True, cpu=cpu_marks, exclude=rss.sampler_cpu_s)
    own_cpu = time.process_time() - cpu0 - rss.sampler_cpu_s()  # the RSS sampler's psutil calls are not the study's
    workers_cpu = rss.children_cpu_s
    assert summary.trials == count, (summary.trials, count)
    bare_s, bare_cpu = _bare_on_stored(db, SCALE["bars"])
    window = max(1_000, count // 20)
    # The trial loop alone, from 5% to 95% of the trials reported: no start-up, validation or report.
    first = next(((d, c, m) for d, c, m in cpu_marks if d >= count // 20), None)
    last = next(((d, c, m) for d, c, m in cpu_marks if d >= count - count // 20), None)
    loop_cpu = loop_main = None
    if first is not None and last is not None and last[0] > first[0]:
        loop_cpu = (last[1] - first[1]) / (last[0] - first[0]) * 1e6
        loop_main = (last[2] - first[2]) / (last[0] - first[0]) * 1e6

    early, late = _per_thousand(marks, window, window), _per_thousand(marks, count - 2 * window, window)
    # The driver's CPU per 1,000 trials early and late: flatness that the box's load does not move.
    driver = [(done, cpu) for done, cpu, _ in cpu_marks]
    cpu_early, cpu_late = _per_thousand(driver, window, window), _per_thousand(driver, count - 2 * window, window)
    return {
        "trials": count,
        "bars": SCALE["bars"],
        "study_s": round(study_s, 3),
        "bare_two_thread_loop_s": round(bare_s, 3),
        "ratio": round(study_s / bare_s, 3),
        "overhead_us_per_trial": round((study_s - bare_s) / count * 1e6, 2),
        "orchestrator_cpu_us_per_trial": round(own_cpu / count * 1e6, 2),
        "loop_cpu_us_per_trial": None if loop_cpu is None else round(loop_cpu, 2),
        "loop_event_loop_cpu_us_per_trial": None if loop_main is None else round(loop_main, 2),
        "workers_cpu_s": round(workers_cpu, 3),
        "bare_cpu_s": round(bare_cpu, 3),
        "cpu_ratio": round((own_cpu + workers_cpu) / bare_cpu, 3) if bare_cpu > 0 else None,
        "goal_overhead_us_per_trial": 20,
        "peak_rss_orchestrator_mb": round(rss.own / 2**20, 1),
        "peak_rss_tree_mb": round(rss.tree / 2**20, 1),
        "goal_rss_mb": 1024,
        "s_per_1000_early": None if early is None else round(early, 4),
        "s_per_1000_late": None if late is None else round(late, 4),
        "flatness_ratio": None if not early or not late else round(late / early, 3),
        "driver_cpu_s_per_1000_early": None if cpu_early is None else round(cpu_early, 4),
        "driver_cpu_s_per_1000_late": None if cpu_late is None else round(cpu_late, 4),
        "driver_cpu_flatness_ratio": None if not cpu_early or not cpu_late else round(cpu_late / cpu_early, 3),
    }


#: Runs of the short study (each in a fresh store); the best is kept (the box is shared).
SHORT_ROUNDS = 3
SHORT = {"bars": 100_000, "trials": 50}

#: Runs the command line in this process and says, on stderr, whether it loaded numba (the
#: ``__main__`` guard: the fork server imports the main module of the process it serves).
_SHORT_DRIVER = """\
import sys
if __name__ == "__main__":
    from genesis_tui.cli import main
    sys.argv = ["genesis", *sys.argv[1:]]
    try:
        main()
    finally:
        print("numba_in_driver=" + str("numba" in sys.modules), file=sys.stderr)
"""


#: Runs one command as a child subreaper (Linux): the fork server and its workers, orphaned when the
#: command exits, are reparented to this process and reaped here, so their CPU time counts too.
_REAPER = """\
import ctypes, json, os, resource, subprocess, sys, time
covers = "command"
if sys.platform.startswith("linux"):
    with __import__("contextlib").suppress(Exception):
        if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0:  # PR_SET_CHILD_SUBREAPER
            covers = "command, fork server and workers"
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True, check=False)
wall = time.perf_counter() - start
while covers != "command":
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        break
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "covers": covers,
                  "code": done.returncode, "stderr": done.stderr[-2000:]}))
"""


def _command(workdir: Path, path: Path, label: str) -> tuple[float, float, bool, str]:
    """``genesis run STUDY --headless`` with its report in a fresh store, start to exit (its output
    read to the end, as a cron wrapper does): wall seconds, CPU seconds, whether the driver loaded
    numba, and what the CPU covers (the command, its fork server and workers where the platform
    lets a reaper collect them: Linux; else the command and the children it reaped itself).

    The child may write bytecode (``PYTHONDONTWRITEBYTECODE`` is dropped): an installed
    package has its ``.pyc`` files, and compiling every module from source cost ~0.6 CPU-s.
    """
    import subprocess
    import sys

    driver = workdir / "command_driver.py"
    driver.write_text(_SHORT_DRIVER)
    reaper = workdir / "command_reaper.py"
    reaper.write_text(_REAPER)
    command = [sys.executable, str(driver), "run", str(path), "--headless", "--db", str(workdir / f"{label}.db"),
               "--report", str(workdir / f"{label}-report")]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    reaped = subprocess.run([sys.executable, str(reaper), *command], capture_output=True, text=True, check=True, env=env)
    done = json.loads(reaped.stdout)
    if done["code"] != 0:
        raise RuntimeError(f"{label}: the command exited {done['code']}: {done['stderr']}")
    return done["wall"], done["cpu"], "numba_in_driver=True" in done["stderr"], done["covers"]


def short_study(workdir: Path, quick: bool) -> dict[str, Any]:
    """A 50-trial study on 100,000 bars, ``genesis run --headless`` start to exit, against the bare loop."""
    path = _write_study(workdir, "short", SHORT["bars"], (2, 100, 1), (10, 400, 2), trials=SHORT["trials"],
                        batch=64, sampler="random")
    walls: list[float] = []
    cpus: list[float] = []
    numba_loaded: set[bool] = set()
    covers = "command"
    for round_ in range(SHORT_ROUNDS):
        wall, cpu, numba_in_driver, covers = _command(workdir, path, f"short-{round_}")
        walls.append(wall)
        cpus.append(cpu)
        numba_loaded.add(numba_in_driver)
    bare_s, _ = _bare_on_stored(workdir / "short-0.db", SHORT["bars"])
    best = min(walls)
    return {
        "trials": SHORT["trials"],
        "bars": SHORT["bars"],
        "command_s": round(best, 3),
        "command_all_s": [round(w, 3) for w in walls],
        # The CPU of the command and (Linux) its fork server and workers: proof against a loaded box.
        "command_cpu_s": round(min(cpus), 3),
        "command_cpu_covers": covers,
        "bare_two_thread_loop_s": round(bare_s, 4),
        "ratio": round(best / bare_s, 1),
        "goal_command_s": 1.0,
        "numba_in_driver": True in numba_loaded,
    }


def run(quick: bool = False, scale_trials: int | None = None) -> dict[str, Any]:
    """Every optimizer figure (``quick``: smaller sizes, same shape)."""
    workdir = Path(tempfile.mkdtemp(prefix="genesis-bench-opt-"))
    try:
        figures = {
            "headline": headline(workdir, quick),
            "scaling": scaling(workdir, quick),
            "store": store_throughput(workdir, quick),
            "memory": memory_and_flatness(workdir, quick),
            "short": short_study(workdir, quick),
            **({} if quick and scale_trials is None else {"scale": scale(workdir, quick, scale_trials)}),
            "quick": quick,
            "cpus": os.cpu_count(),
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return figures


def _parse_grid(text: str) -> dict[str, Any]:
    """``--grid``'s ``fast:slow:bars:fill`` (ranges as ``first,last,step``) as a headline shape."""
    def triple(part: str) -> tuple[int, int, int]:
        first, last, step = (int(v) for v in part.split(","))
        return first, last, step

    try:
        fast, slow, bars, fill = text.split(":")
        shape = {"fast": triple(fast), "slow": triple(slow), "bars": int(bars), "fill": fill}
    except ValueError:
        _usage_error(f"--grid: expected FIRST,LAST,STEP:FIRST,LAST,STEP:BARS:FILL, e.g. 3,150,1:20,500,3:50000:close; "
                     f"got {text!r}")
    if fill not in ("close", "next_open"):
        _usage_error(f"--grid: fill must be close or next_open, got {fill!r}")
    return shape


def _usage_error(message: str) -> NoReturn:
    """One line on stderr and exit 2, as every Genesis command does on bad input."""
    print(message, file=sys.stderr)
    raise SystemExit(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--only", choices=("headline", "scaling", "store", "memory", "short", "scale"), help="one figure")
    parser.add_argument("--grid", metavar="FAST:SLOW:BARS:FILL",
                        help="the headline figure on another grid, e.g. 3,150,1:20,500,3:50000:close "
                             "(fast first,last,step : slow first,last,step : bars : fill)")
    parser.add_argument("--scale", type=int, metavar="TRIALS", dest="scale_trials",
                        help="trials of the scale study (default 1,000,000; with --quick it runs only when given)")
    args = parser.parse_args()
    if args.only:
        workdir = Path(tempfile.mkdtemp(prefix="genesis-bench-opt-"))
        try:
            if args.only == "headline" and args.grid:
                result = headline(workdir, args.quick, _parse_grid(args.grid))
            elif args.only == "scale":
                result = scale(workdir, args.quick, args.scale_trials)
            else:
                function = {"headline": headline, "scaling": scaling, "store": store_throughput,
                            "memory": memory_and_flatness, "short": short_study}[args.only]
                result = function(workdir, args.quick)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    else:
        result = run(args.quick, args.scale_trials)
    print(json.dumps(result, indent=2, default=lambda v: None if isinstance(v, float) and math.isnan(v) else str(v)))


if __name__ == "__main__":
    main()
