"""Claims with leases on a real PostgreSQL server: racing drivers, lease hand-over, and three `genesis run`s on one study."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import asyncpg

from engine.store.claims import Claim, ClaimBoard
from engine.store.postgres import PostgresStore
from tests.gate import Gate
from tests.headless.conftest import GENESIS, env, genesis, stored_trials


async def _study(url: str, name: str = "shared") -> int:
    async with await PostgresStore.open(url) as store:
        return (await store.create_study(name, "x = 1\n")).id


def _grid_ask(state: dict[str, Any] | None, n: int) -> tuple[list[dict[str, Any]], dict[str, Any], bool]:
    """A grid of 1,000 points as a sampler would hand them out from a cursor."""
    cursor = 0 if state is None else int(state["cursor"])
    end = min(cursor + n, 1000)
    return [{"i": i} for i in range(cursor, end)], {"cursor": end}, end >= 1000


async def test_two_drivers_racing_for_claims_never_share_a_point_and_hand_out_the_budget_exactly(
    postgres_url: str,
) -> None:
    study_id = await _study(postgres_url)
    boards = [await ClaimBoard.open(postgres_url, lease_s=60) for _ in range(2)]
    taken: dict[str, list[Claim]] = {"a": [], "b": []}

    async def drive(board: ClaimBoard, name: str) -> None:
        await board.register(study_id, name, "host", 1)
        while (claim := await board.claim(study_id, name, _grid_ask, 7, budget=900)) is not None:
            taken[name].append(claim)
            assert await board.complete(claim, name, [None] * len(claim.points))

    try:
        await asyncio.gather(drive(boards[0], "a"), drive(boards[1], "b"))
        points = [p["i"] for claims in taken.values() for c in claims for p in c.points]
        numbers = [c.first_number + k for claims in taken.values() for c in claims for k in range(len(c.points))]
        assert sorted(points) == list(range(900))  # disjoint ranges, none lost, budget exact (not 1,000)
        assert sorted(numbers) == list(range(900))
        assert taken["a"] and taken["b"]  # both drivers got work
        assert await boards[0].finished(study_id, 900)
        by_driver = {d.driver: d for d in await boards[0].drivers(study_id)}
        assert by_driver["a"].trials + by_driver["b"].trials == 900 and by_driver["a"].host == "host"
    finally:
        for board in boards:
            await board.close()


async def test_an_expired_lease_is_handed_over_and_a_live_one_is_not(postgres_url: str) -> None:
    study_id = await _study(postgres_url)
    live = await ClaimBoard.open(postgres_url, lease_s=3600)
    # A zero lease runs out as soon as it is written: the driver that took it is as good as dead.
    dying = ClaimBoard(live.url, await asyncpg.connect(live.url.dsn), lease_s=0)
    try:
        held = await live.claim(study_id, "live", _grid_ask, 5, budget=1000)
        lost = await dying.claim(study_id, "dying", _grid_ask, 5, budget=1000)
        assert held is not None and lost is not None
        taken = await live.take_expired(study_id, "live")
        assert taken is not None and taken.id == lost.id and taken.handed_over
        assert taken.points == lost.points and taken.first_number == lost.first_number == 5
        assert await dying.take_expired(study_id, "dying") is None  # the live lease stays with its driver
        assert await dying.heartbeat(study_id, "dying") == 0  # the late heartbeat renews nothing it lost
        assert not await dying.complete(lost, "dying", [None] * 5)  # nor can it close the claim
        assert await live.open_claims(study_id) == 2
        assert await live.complete(taken, "live", [None] * 5) and await live.complete(held, "live", [None] * 5)
        assert await live.open_claims(study_id) == 0
        rows = await live._db.fetch("SELECT handovers FROM claims WHERE study_id = $1 ORDER BY id", study_id)
        assert [r[0] for r in rows] == [0, 1]
    finally:
        await live.close()
        await dying.close()


# -- three `genesis run` processes on one study ---------------------------------------------------------------------

GRID_STUDY = """\
name = "{name}"

[data]
spec = "synthetic:bars=200000,seed=5,timeframe=1m"

[strategy]
name = "gated_cross"
file = "gated.py"

[space]
fast = {{ int = [2, 101], step = 1 }}
slow = {{ int = [10, 300], step = 10 }}
constraints = ["fast < slow"]

[backtest]
fee = 0.001

[search]
sampler = "grid"
objective = "total_return"

[execution]
backend = "inline"
workers = 1
batch_size = 32
checkpoint_every = 64
checkpoint_interval_s = 0.2
artifacts = "top:3"

[validation]
out_of_sample = 0.0
"""


async def _fetch_async(url: str, sql: str, *args: Any) -> list[Any]:
    connection = await asyncpg.connect(url)
    try:
        return list(await connection.fetch(sql, *args))
    except asyncpg.UndefinedTableError:
        return []
    finally:
        await connection.close()


def _fetch(url: str, sql: str, *args: Any) -> list[Any]:
    return asyncio.run(_fetch_async(url, sql, *args))


_TRIALS_SQL = ("SELECT t.key, t.number, t.state, t.objective FROM trials t JOIN studies s ON s.id = t.study_id "
               "WHERE s.name = $1")


def _pg_rows(url: str, name: str) -> dict[str, tuple[int, str, float | None]]:
    return {r[0]: (int(r[1]), r[2], r[3]) for r in _fetch(url, _TRIALS_SQL, name)}


def _count(url: str, sql: str, *args: Any) -> int:
    """A ``count(*)`` query's answer (0 while the tables do not exist yet)."""
    rows = _fetch(url, sql, *args)
    return int(rows[0][0]) if rows else 0


def _sqlite_reference(tmp_path: Path, study: Path, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    db = tmp_path / "single.db"
    single = genesis("run", study, "--db", db, "--json", "--no-record")
    assert single.returncode == 0, single.stderr[-2000:]
    return stored_trials(db, name), json.loads(single.stdout)["best"]


def _start(tmp_path: Path, i: int, *args: str | Path, **extra_env: str) -> subprocess.Popen[str]:
    """A `genesis` child whose output goes to files (a pipe nobody reads could fill and stall it)."""
    out = (tmp_path / f"driver{i}.out").open("w")
    err = (tmp_path / f"driver{i}.err").open("w")
    return subprocess.Popen([*GENESIS, *map(str, args)], stdout=out, stderr=err, text=True, env=env(**extra_env))


def _finish(tmp_path: Path, processes: list[subprocess.Popen[str]]) -> list[tuple[int, str, str]]:
    outcomes = []
    for i, process in enumerate(processes):
        process.wait(timeout=600)
        outcomes.append((process.returncode, (tmp_path / f"driver{i}.out").read_text(),
                         (tmp_path / f"driver{i}.err").read_text()))
    return outcomes


#: The driver to be killed waits at its first trial from fast=20 on (grid number ~530 of ~2,600: after it
#: has run claims of its own); the others, without the variable, never wait and store the rest.
VICTIM = "GENESIS_TEST_VICTIM"


def _write(tmp_path: Path, name: str) -> Path:
    Gate(tmp_path, fast=20, slow=None, variable=VICTIM).write(tmp_path)
    path = tmp_path / f"{name}.toml"
    path.write_text(GRID_STUDY.format(name=name))
    return path


def test_three_drivers_share_one_grid_and_one_killed_mid_run_changes_nothing(postgres_url: str, tmp_path: Path) -> None:
    name = "three"
    study = _write(tmp_path, name)
    reference, best = _sqlite_reference(tmp_path, study, name)
    n = len(reference)
    assert n > 2000

    # Three drivers at once; the third is SIGKILLed once it holds an open claim and a fifth of the grid is
    # stored. It waits at its gate from fast=20 on, so it is alive, holding a claim, until it is killed.
    drivers = [_start(tmp_path, i, "run", study, "--db", postgres_url, "--json", "--report", tmp_path / "r",
                      GENESIS_LEASE_S="2", **({VICTIM: "1"} if i == 2 else {})) for i in range(3)]
    victim = drivers[2]
    holds_sql = ("SELECT count(*) FROM claims c JOIN drivers d ON d.driver = c.driver "
                 "WHERE d.pid = $1 AND NOT c.done")
    killed = False
    while not killed:
        assert victim.poll() is None, "the driver to be killed ended first"
        if _count(postgres_url, "SELECT count(*) FROM trials") < n // 5:
            continue
        if not _count(postgres_url, holds_sql, victim.pid):
            continue
        os.kill(victim.pid, signal.SIGSTOP)  # hold it still: the claim it holds now is the one it dies with
        if _count(postgres_url, holds_sql, victim.pid):
            os.kill(victim.pid, signal.SIGKILL)
            killed = True
        else:
            os.kill(victim.pid, signal.SIGCONT)
    outcomes = _finish(tmp_path, drivers)
    assert outcomes[2][0] == -signal.SIGKILL
    for code, _out, err in outcomes[:2]:
        assert code == 0, err[-3000:]
        assert f"{n}/{n} trials (100.0%)" in err  # each driver's progress counts the others' trials too

    shared = _pg_rows(postgres_url, name)
    assert len(shared) == n  # every grid point once: none lost, none twice (keys are unique in the table)
    assert shared == reference  # same numbers, states and objectives as one SQLite run
    summaries = [json.loads(out) for code, out, _ in outcomes[:2]]
    assert all(s["best"] == best for s in summaries)
    handovers = _fetch(postgres_url, "SELECT coalesce(sum(handovers), 0) FROM claims")[0][0]
    assert handovers >= 1  # the dead driver's claim went to a live one
    assert _fetch(postgres_url, "SELECT count(*) FROM claims WHERE NOT done")[0][0] == 0

    reports = [p.read_text() for p in (tmp_path / "r").rglob("report.md")]
    assert reports and all("## Drivers" in text for text in reports)

    listed = genesis("trials", name, "--db", postgres_url, "--drivers")
    assert listed.returncode == 0, listed.stderr[-2000:]
    lines = listed.stdout.splitlines()
    assert len(lines) == 3 and all(f"pid {p.pid}" in "".join(lines) for p in drivers)
    assert sum("  done  " in line for line in lines) == 2, listed.stdout  # the killed one never said goodbye


async def test_two_drivers_of_a_random_study_store_exactly_the_budget_a_single_run_stores(
    postgres_url: str, tmp_path: Path
) -> None:
    from engine.optimize.study import Study
    from tests.optimize.conftest import write_study

    path = write_study(tmp_path, name="rnd", sampler="random", trials=120, fast_high=60, fast_step=1,
                       slow_high=600, batch_size=8, bars=1500)
    await Study.from_file(path, db=tmp_path / "single.db", backend="inline").run()
    reference = stored_trials(tmp_path / "single.db", "rnd")
    assert len(reference) == 120

    summaries = await asyncio.gather(*(Study.from_file(path, db=postgres_url, backend="inline").run()
                                       for _ in range(2)))
    assert all(s.state == "complete" and s.trials == 120 for s in summaries)
    shared = {r[0]: (int(r[1]), r[2], r[3]) for r in await _fetch_async(postgres_url, _TRIALS_SQL, "rnd")}
    assert shared == reference  # one random sequence, cut at the budget, same numbers
    drivers = await _fetch_async(postgres_url, "SELECT state, trials FROM drivers")
    assert sorted(r[0] for r in drivers) == ["done", "done"] and sum(r[1] for r in drivers) == 120

    # The console's watch of the shared study lists both drivers.
    from engine.runtime._watch import StudyWatch
    from engine.store.url import store_location

    watch = StudyWatch("rnd", store_location(postgres_url), maximize=True)
    await watch.poll(final=True)
    await watch.stop()
    assert sorted(d.state for d in watch.drivers) == ["done", "done"]
    assert sum(d.trials for d in watch.drivers) == 120 and all(d.pid == os.getpid() for d in watch.drivers)


async def test_two_drivers_of_a_genetic_study_share_its_generations(postgres_url: str, tmp_path: Path) -> None:
    from engine.optimize.study import Study
    from tests.optimize.conftest import write_study

    # batch_size 6 cuts each 16-member generation into claims, so a generation is told by several claims.
    path = write_study(tmp_path, name="gen", sampler="genetic", trials=200, fast_high=60, fast_step=1,
                       slow_high=600, batch_size=6, bars=1500, search_extra="population = 16\ngenerations = 4\n")
    single = await Study.from_file(path, db=tmp_path / "single.db", backend="inline").run()
    summaries = await asyncio.gather(*(Study.from_file(path, db=postgres_url, backend="inline").run()
                                       for _ in range(2)))
    assert all(s.state == "complete" for s in summaries)
    shared = await _fetch_async(postgres_url, _TRIALS_SQL, "gen")
    assert len(shared) == single.trials  # every generation handed out whole, nothing twice
    state = await _fetch_async(postgres_url, "SELECT state FROM shared_samplers")
    assert json.loads(state[0][0])["generation"] == 3  # the last generation was bred from told results


async def test_two_drivers_of_a_tpe_study_store_the_budget_and_tell_every_result(
    postgres_url: str, tmp_path: Path
) -> None:
    from engine.optimize.study import Study
    from tests.optimize.conftest import write_study

    path = write_study(tmp_path, name="tpe", sampler="tpe", trials=40, fast_high=60, fast_step=1,
                       slow_high=600, batch_size=4, bars=1500)
    summaries = await asyncio.gather(*(Study.from_file(path, db=postgres_url, backend="inline").run()
                                       for _ in range(2)))
    assert all(s.state == "complete" for s in summaries)
    assert len(await _fetch_async(postgres_url, _TRIALS_SQL, "tpe")) == 40
    state = json.loads((await _fetch_async(postgres_url, "SELECT state FROM shared_samplers"))[0][0])
    statuses = [status for _, status, _ in state["history"]]
    assert "running" not in statuses  # every point handed out was told, whichever driver ran it
    assert statuses.count("complete") >= 40


def test_the_lease_comes_from_genesis_lease_s_and_a_bad_one_is_named(monkeypatch: Any) -> None:
    import pytest

    from engine.errors import ConfigError
    from engine.optimize.shared import DEFAULT_LEASE_S, lease_seconds

    monkeypatch.delenv("GENESIS_LEASE_S", raising=False)
    assert lease_seconds() == DEFAULT_LEASE_S
    monkeypatch.setenv("GENESIS_LEASE_S", "2.5")
    assert lease_seconds() == 2.5
    for bad in ("soon", "0", "-3"):
        monkeypatch.setenv("GENESIS_LEASE_S", bad)
        with pytest.raises(ConfigError, match=f"GENESIS_LEASE_S: .*{bad!r}"):
            lease_seconds()


async def test_a_stopped_driver_hands_its_claims_back_and_the_next_run_finishes_the_grid(
    postgres_url: str, tmp_path: Path
) -> None:
    from engine.optimize.progress import StudyProgress
    from engine.optimize.study import Study
    from tests.optimize.conftest import write_study

    path = write_study(tmp_path, name="stop", fast_high=40, fast_step=1, slow_high=200, batch_size=8, bars=1500)
    await Study.from_file(path, db=tmp_path / "single.db", backend="inline").run()
    reference = stored_trials(tmp_path / "single.db", "stop")

    first = Study.from_file(path, db=postgres_url, backend="inline")

    def stop_early(progress: StudyProgress) -> None:
        if progress.done >= 20:
            first.request_stop()

    stopped = await first.run(stop_early, progress_interval_s=0.0)
    assert stopped.state == "stopped" and 0 < stopped.trials < len(reference)
    # Its open claims are free now (lease ended), not after the 30 s lease: a new driver need not wait.
    future = await _fetch_async(postgres_url, "SELECT count(*) FROM claims WHERE NOT done "
                                "AND lease_until > extract(epoch FROM clock_timestamp())")
    assert future[0][0] == 0
    assert [r[0] for r in await _fetch_async(postgres_url, "SELECT state FROM drivers")] == ["stopped"]

    done = await Study.from_file(path, db=postgres_url, backend="inline").run()
    assert done.state == "complete"
    shared = {r[0]: (int(r[1]), r[2], r[3]) for r in await _fetch_async(postgres_url, _TRIALS_SQL, "stop")}
    assert shared == reference
