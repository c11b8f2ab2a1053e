"""Cron-fit output, already-complete and --rerun, bad input, report files against the store."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from engine.errors import InputError
from engine.headless.runner import parse_duration
from engine.store.study_sqlite import SqliteStore
from tests.headless.conftest import genesis, one_json, stored_trials, write_study

ANSI = "\x1b["


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, dict, str, str]:
    """A small study run headless off a terminal: (dir, study file, db, summary, stdout, stderr)."""
    directory = tmp_path_factory.mktemp("cron")
    study = write_study(directory, name="cron", oos=0.2, artifacts="top:5")
    db = directory / "store.db"
    result = genesis("run", study, "--db", db, "--report", directory / "reports", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    return directory, study, db, one_json(result.stdout), result.stdout, result.stderr


def test_json_prints_one_summary_object_and_no_escape_codes(finished) -> None:
    _, _, db, summary, stdout, stderr = finished
    assert ANSI not in stdout and ANSI not in stderr
    assert summary["state"] == "complete" and summary["exit_code"] == 0 and summary["resumable"] is False
    assert summary["trials"] == summary["complete"] == len(stored_trials(db))
    assert summary["run"]["trials_before"] == 0 and summary["run"]["trials_this_run"] == summary["trials"]
    assert summary["recording"]["frames"] >= 1
    assert Path(summary["log_file"]).read_text().count("summary:") == 1


def test_plain_output_off_a_terminal_has_no_escape_codes(tmp_path: Path) -> None:
    study = write_study(tmp_path, name="plain")
    result = genesis("run", study, "--db", tmp_path / "s.db")
    assert result.returncode == 0, result.stderr
    assert ANSI not in result.stdout and ANSI not in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("plain: starting run 1")
    assert any(line.startswith("plain: ") and "trials (" in line and "ETA" in line for line in lines)
    assert lines[-1].startswith("plain: complete") and "exit 0" in lines[-1]


def test_quiet_prints_nothing_when_all_is_well_and_still_logs(tmp_path: Path) -> None:
    study = write_study(tmp_path, name="quiet")
    log = tmp_path / "quiet.log"
    result = genesis("run", study, "--db", tmp_path / "s.db", "--quiet", "--log-file", log)
    assert result.returncode == 0
    assert result.stdout == "" and result.stderr == ""
    text = log.read_text()
    assert "quiet: starting run 1" in text and "summary: quiet: complete" in text


def test_quiet_still_says_what_failed(tmp_path: Path) -> None:
    study = write_study(tmp_path, name="quietbad")
    text = study.read_text().replace('name = "sma_cross"', 'name = "no_such_strategy"')
    study.write_text(text)
    result = genesis("run", study, "--db", tmp_path / "s.db", "--quiet")
    assert result.returncode == 2
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
    assert "no_such_strategy" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "s.db").exists()  # nothing half-written


@pytest.mark.parametrize("value", ["abc", "-5m", "0", "10x", ""])
def test_a_bad_budget_is_exit_2_with_one_line(tmp_path: Path, value: str) -> None:
    study = write_study(tmp_path, name="budget")
    result = genesis("run", study, "--db", tmp_path / "s.db", "--headless", "--max-runtime", value)
    assert result.returncode == 2 and "--max-runtime" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_durations_parse() -> None:
    assert parse_duration("45m") == 2700 and parse_duration("1h30m") == 5400
    assert parse_duration("90s") == 90 and parse_duration("3600") == 3600 and parse_duration("2.5h") == 9000
    with pytest.raises(InputError):
        parse_duration("1 fortnight")


def test_a_complete_study_exits_0_at_once_saying_so(finished) -> None:
    _, study, db, summary, _, _ = finished
    again = genesis("run", study, "--db", db)
    assert again.returncode == 0, again.stderr
    assert "already complete" in again.stdout and "--rerun" in again.stdout
    as_json = genesis("run", study, "--db", db, "--json")
    payload = one_json(as_json.stdout)
    assert payload["already_complete"] is True and payload["best"]["key"] == summary["best"]["key"]
    assert len(stored_trials(db, "cron")) == summary["trials"]


def test_rerun_keeps_the_old_study_and_starts_afresh(tmp_path: Path) -> None:
    study = write_study(tmp_path, name="again")
    db = tmp_path / "s.db"
    assert genesis("run", study, "--db", db, "--json").returncode == 0
    result = genesis("run", study, "--db", db, "--json", "--rerun")
    assert result.returncode == 0, result.stderr
    summary = one_json(result.stdout)
    assert summary["state"] == "complete" and summary["run"]["trials_before"] == 0
    with sqlite3.connect(db) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM studies ORDER BY id")]
        runs = dict(conn.execute("SELECT study, count(*) FROM headless_runs GROUP BY study").fetchall())
    assert names[1] == "again" and names[0].startswith("again@")
    assert runs == {names[0]: 1, "again": 1}
    assert len(stored_trials(db, names[0])) == len(stored_trials(db, "again")) == summary["trials"]


async def _store_facts(db: Path, name: str) -> tuple[int, int, float]:
    store = await SqliteStore.open(db, readonly=True)
    try:
        record = await store.require_study(name)
        counts = await store.counts(record.id)
        best = (await store.best(record.id, maximize=True, k=1))[0]
        return sum(counts.values()), best.number, float(best.objective)  # type: ignore[arg-type]
    finally:
        await store.close()


def _check_report_dir(directory: Path, trials: int, best_number: int, best_value: float) -> None:
    report = json.loads((directory / "report.json").read_text())
    assert report["trials"] == trials
    assert report["best"]["number"] == best_number and report["best"]["objective"] == pytest.approx(best_value)
    assert report["validation"] is not None and report["validation"]["deflated_sharpe"] is not None
    md = (directory / "report.md").read_text()
    assert f"Trial #{best_number}" in md and "## Charts" in md and "## Alerts" in md and "## Runs" in md
    assert "Validation" in md and "Deflated Sharpe" in md
    assert "Profile" in md
    for name in ("equity", "convergence", "heatmap"):
        root = ET.fromstring((directory / f"{name}.svg").read_text())
        assert root.tag.endswith("svg")
        assert f"![{name}]({name}.svg)" in md
    svg = (directory / "equity.svg").read_text()
    assert svg.count("<polyline") >= 1 and f"#{best_number} " in svg
    assert (directory / "heatmap.svg").read_text().count("<rect") > 20


def test_report_files_exist_and_agree_with_the_store(finished) -> None:
    directory, _, db, summary, _, _ = finished
    trials, best_number, best_value = asyncio.run(_store_facts(db, "cron"))
    assert summary["best"]["number"] == best_number
    run_dir = Path(summary["report"]["dir"])
    assert run_dir.parent == directory / "reports" / "cron"
    _check_report_dir(run_dir, trials, best_number, best_value)
    latest = json.loads((directory / "reports" / "cron.json").read_text())
    assert latest["best"]["number"] == best_number


def test_genesis_report_out_rebuilds_the_directory_from_the_store_alone(finished) -> None:
    directory, _, db, _, _, _ = finished
    trials, best_number, best_value = asyncio.run(_store_facts(db, "cron"))
    out = directory / "regenerated"
    result = genesis("report", "cron", "--db", db, "--out", out)
    assert result.returncode == 0, result.stderr
    _check_report_dir(out, trials, best_number, best_value)


def test_bad_data_found_during_the_run_is_exit_2_with_one_line(tmp_path: Path) -> None:
    study = write_study(tmp_path, name="nodata")
    study.write_text(study.read_text().replace("synthetic:bars=3000,seed=11,timeframe=1m", "csv:/nonexistent.csv"))
    result = genesis("run", study, "--db", tmp_path / "s.db", "--report", tmp_path / "reports")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "/nonexistent.csv" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "reports").exists()


def test_profile_puts_the_stage_timings_in_the_report(tmp_path: Path) -> None:
    study = write_study(tmp_path, name="profiled")
    result = genesis("run", study, "--db", tmp_path / "s.db", "--profile", "--json", "--report", tmp_path / "r")
    assert result.returncode == 0, result.stderr
    report = json.loads(Path(one_json(result.stdout)["report"]["json"]).read_text())
    stages = {s["name"] for s in report["profile"]["stages"]}
    assert {"data.load", "optimize.store_write"} <= stages
    assert "`data.load`" in Path(one_json(result.stdout)["report"]["md"]).read_text()


def test_report_has_buy_and_hold_and_the_best_trials_excess(finished) -> None:
    from engine.backtest import BacktestOptions, buy_and_hold_return
    from engine.data import load

    directory, _, _, summary, _, _ = finished
    latest = json.loads((directory / "reports" / "cron.json").read_text())
    benchmark = latest["benchmark"]
    searched = load("synthetic:bars=3000,seed=11,timeframe=1m").slice(0, 2400)  # out_of_sample = 0.2 held out
    held = buy_and_hold_return(searched, BacktestOptions(fee=0.001))
    assert benchmark["bars"] == 2400
    assert benchmark["buy_and_hold_return"] == pytest.approx(held, rel=1e-12)
    best = latest["best"]["metrics"]["total_return"]
    assert benchmark["excess_return"] == pytest.approx(best - held, rel=1e-12)
    md = Path(summary["report"]["md"]).read_text()
    assert "## Benchmark" in md and f"**{held * 100:.2f} %**" in md and f"**{(best - held) * 100:+.2f} %**" in md
