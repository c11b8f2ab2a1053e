"""The cron runner on real processes: lock, SIGKILL and resume, SIGTERM, a second signal, budgets, three nights."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import IO

import pytest

from engine.optimize.lock import lock_path, read_holder
from tests.headless.conftest import (
    big_study,
    committed,
    gated_study,
    genesis,
    one_json,
    start,
    stored_trials,
    study_row,
    wait_for,
)

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str, float | None]]:
    """The gated study run once with its gate open, uninterrupted: its trials by key."""
    directory = tmp_path_factory.mktemp("reference")
    study, _gate = gated_study(directory, opened=True)
    db = directory / "ref.db"
    result = genesis("run", study, "--db", db, "--headless", "--json", "--no-record")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = one_json(result.stdout)
    assert summary["state"] == "complete" and summary["exit_code"] == 0
    trials = stored_trials(db)
    assert len(trials) == summary["trials"] > 500
    return trials


def _lines_until(stream: IO[str] | None, text: str) -> list[str]:
    """Lines read from a child's ``stream`` up to the first that holds ``text`` (all of them at EOF)."""
    assert stream is not None
    lines = []
    for line in iter(stream.readline, ""):
        lines.append(line)
        if text in line:
            break
    return lines


def _checkpoints(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            row = conn.execute("SELECT max(checkpoint_seq) FROM studies").fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0] or 0)


def _holder_written(db: Path, name: str) -> bool:
    holder = read_holder(lock_path(db, name))
    return holder is not None and holder.pid is not None


def test_sigkill_then_rerun_resumes_with_no_trial_lost_or_repeated(reference, tmp_path: Path) -> None:
    """Killed while its held trial waits (so it cannot have completed), then re-run with the gate open."""
    expected = reference
    study, gate = gated_study(tmp_path)
    db = tmp_path / "killed.db"
    proc = start("run", study, "--db", db)
    wait_for(lambda: gate.held() and committed(db) >= 100, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    interrupted = committed(db)
    assert 0 < interrupted < len(expected)
    gate.open()
    # the kernel released the lock with the process: the next run starts at once
    again = genesis("run", study, "--db", db, "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    summary = one_json(again.stdout)
    assert summary["state"] == "complete" and summary["run"]["trials_before"] == interrupted
    got = stored_trials(db)
    assert set(got) == set(expected)  # no trial lost, none extra
    assert {k: v[2] for k, v in got.items()} == {k: v[2] for k, v in expected.items()}  # same objectives
    assert summary["best"]["key"] == max(
        ((v[2], -v[0], k) for k, v in expected.items() if v[1] == "complete"),
    )[2]


def test_overlapping_runs_the_second_exits_75_naming_the_holder(tmp_path: Path) -> None:
    """The second run starts while the first one's held trial waits: the first cannot have ended."""
    study, gate = gated_study(tmp_path, name="overlap")
    db = tmp_path / "overlap.db"
    proc = start("run", study, "--db", db, "--max-runtime", "120s")
    try:
        wait_for(lambda: gate.held() and _holder_written(db, "overlap"), proc)
        holder = read_holder(lock_path(db, "overlap"))
        assert holder is not None and holder.pid == proc.pid
        overlap = genesis("run", study, "--db", db)
        assert proc.poll() is None, "the first run ended before the overlap was checked"
    finally:
        proc.send_signal(signal.SIGTERM)
        _lines_until(proc.stdout, "SIGTERM: no new trials")  # opened once it dispatches no more
        gate.open()
        proc.communicate(timeout=120)
    assert overlap.returncode == 75, overlap.stderr
    assert f"pid {proc.pid}" in overlap.stderr and holder.started_iso in overlap.stderr
    assert len(overlap.stderr.strip().splitlines()) == 1 and overlap.stdout == ""
    assert proc.returncode == 143


def test_sigterm_checkpoints_exits_143_and_the_study_resumes(reference, tmp_path: Path) -> None:
    """SIGTERM while the held trial waits; the gate opens once the run says it starts no new trial."""
    expected = reference
    study, gate = gated_study(tmp_path)
    db = tmp_path / "term.db"
    proc = start("run", study, "--db", db)
    wait_for(lambda: gate.held() and committed(db) >= 50 and _checkpoints(db) > 0, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout is not None and proc.stderr is not None
    head = _lines_until(proc.stdout, "SIGTERM: no new trials")
    gate.open()
    out, err = "".join(head) + proc.stdout.read(), proc.stderr.read()
    proc.wait(timeout=120)
    assert proc.returncode == 143, err[-3000:]  # 128 + SIGTERM: stopped, checkpointed, resumable
    assert "SIGTERM" in out and "resumable" in out.splitlines()[-1]
    row = study_row(db, "nightly")
    assert row["state"] == "stopped" and row["checkpoint_seq"] > 0
    stopped_with = stored_trials(db)
    assert 0 < len(stopped_with) < len(expected)

    resumed = genesis("run", study, "--db", db, "--json")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert one_json(resumed.stdout)["run"]["trials_before"] == len(stopped_with)
    assert set(stored_trials(db)) == set(expected)


def test_a_second_signal_exits_at_once_and_the_store_stays_whole(reference, tmp_path: Path) -> None:
    """The second SIGINT lands while the held trial is in hand: the first stop cannot have finished."""
    expected = reference
    study, gate = gated_study(tmp_path)
    db = tmp_path / "twice.db"
    proc = start("run", study, "--db", db)
    wait_for(lambda: gate.held() and committed(db) >= 50, proc)
    proc.send_signal(signal.SIGINT)
    # the first signal is taken: trials in hand finishing (the held one waits), then the report
    assert any("SIGINT: no new trials" in line for line in _lines_until(proc.stdout, "SIGINT: no new trials"))
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-3000:]
    assert "again: exiting now" in err
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    gate.open()
    again = genesis("run", study, "--db", db, "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    assert set(stored_trials(db)) == set(expected)


BUDGET = "3s"
BUDGET_S = 3.0


def _night(*args: str | Path) -> dict:
    result = genesis(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    return one_json(result.stdout)


def test_three_nights_under_a_budget_finish_the_study_with_one_report_each(tmp_path: Path) -> None:
    """The crontab of docs/headless.md, night after night: budget stops exit 0, the last night completes.

    How many trials a 3 s night holds varies threefold on a shared machine (its start-up alone
    can take most of the budget), so the night count is not left to speed: the first two nights
    are held (SIGSTOP) once they have stored a trial of their own until their budget has run out,
    then go on and stop for the budget with only the trials in hand. The study is sized at two
    calibration nights (same data, same budget), so neither held night can finish it and the
    later nights can (up to fourteen nights are allowed for a machine that slows down).
    """
    # Random trials are distinct until the space runs out, so it must hold far more than the study:
    # 254k pairs here (with slow's step of 10, 25,520: a fast kernel's two nights exhausted them).
    space = dict(bars=150_000, fast_high=300, slow_high=1000, slow_step=1, sampler="random")
    pairs = sum(1 for slow in range(10, 1001) for fast in range(2, 301) if fast < slow)
    calibration = big_study(tmp_path, name="calibration", trials=100_000, **space)  # never done in a night
    for _ in range(5):  # a night whose start-up alone spent the budget (a very busy machine) stores nothing
        night = _night("run", calibration, "--db", tmp_path / "calibration.db", "--max-runtime", BUDGET, "--json",
                       "--no-record")
        assert night["stop_reason"] == "budget"
        if night["run"]["trials_this_run"] > 0:
            break
    size = 2 * night["run"]["trials_this_run"]
    assert 0 < size <= pairs // 4, f"{size} trials in a space of {pairs}: a machine this fast needs a larger space"

    study = big_study(tmp_path, name="nights", trials=size, **space)
    db, reports = tmp_path / "store.db", tmp_path / "reports"
    command = ("run", study, "--db", db, "--headless", "--max-runtime", BUDGET, "--report", reports, "--json")
    nights: list[dict] = []
    overlap = None
    for index in range(14):
        stored_before = committed(db)
        proc = start(*command)
        if index < 2:
            def running_tonight(before: int = stored_before, pid: int = proc.pid) -> bool:
                holder = read_holder(lock_path(db, "nights"))
                return committed(db) > before and holder is not None and holder.pid == pid

            wait_for(running_tonight, proc)
            proc.send_signal(signal.SIGSTOP)
            try:
                if overlap is None:  # an overlapping start while the first night holds the lock
                    overlap = genesis(*command)
                # Not a synchronisation: the held night's wall-clock budget must be spent when it goes on.
                time.sleep(BUDGET_S + 0.5)
            finally:
                proc.send_signal(signal.SIGCONT)
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-3000:]
        nights.append(one_json(out))
        if nights[-1]["state"] == "complete":
            break
        assert nights[-1]["stop_reason"] == "budget" and nights[-1]["resumable"] is True
        assert study_row(db, "nights")["state"] == "stopped"
    assert overlap is not None and overlap.returncode == 75, overlap.stderr
    assert "is already running (pid" in overlap.stderr
    assert nights[-1]["state"] == "complete", [n["trials"] for n in nights]
    assert len(nights) >= 3, [n["run"]["trials_this_run"] for n in nights]
    assert len(stored_trials(db)) == size
    assert sum(n["run"]["trials_this_run"] for n in nights) == size
    # one report directory per night, each agreeing with the store at that night's end
    runs = sorted((reports / "nights").glob("*-run*"), key=lambda p: int(p.name.rsplit("run", 1)[1]))
    assert len(runs) == len(nights)
    for directory, summary in zip(runs, nights, strict=True):
        report = json.loads((directory / "report.json").read_text())
        assert report["trials"] == summary["trials"]
        assert report["this_run"]["stop_reason"] == summary["stop_reason"]
        assert {p.name for p in directory.iterdir()} >= {"report.md", "report.json", "equity.svg",
                                                         "convergence.svg", "heatmap.svg"}
    assert (reports / "nights" / "latest").resolve() == runs[-1].resolve()
    assert len(json.loads((runs[-1] / "report.json").read_text())["runs"]) == len(nights)
    # another night after the study is complete: exits 0 at once, saying so, and writes nothing
    after = _night(*command)
    assert after["already_complete"] is True
    assert len(list((reports / "nights").glob("*-run*"))) == len(nights)


def test_max_runtime_stops_dispatching_and_the_next_run_completes(reference, tmp_path: Path) -> None:
    """The budget runs out before the study can complete: its held trial waits until the budget's stop is
    logged (whether or not the run got that far), then the gate opens and the trials in hand finish."""
    expected = reference
    study, gate = gated_study(tmp_path)
    db = tmp_path / "budget.db"
    proc = start("run", study, "--db", db, "--max-runtime", "1.5s", "--json")
    assert proc.stdout is not None and proc.stderr is not None
    head = _lines_until(proc.stderr, "budget is spent: no new trials")  # --json: progress lines on stderr
    gate.open()
    out, err = proc.stdout.read(), "".join(head) + proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err[-3000:]
    summary = one_json(out)
    assert summary["stop_reason"] == "budget" and summary["state"] == "stopped", summary
    second = genesis("run", study, "--db", db, "--json")
    assert second.returncode == 0
    assert one_json(second.stdout)["state"] == "complete"
    assert set(stored_trials(db)) == set(expected)
