"""``genesis run/resume/report/trials`` end to end in subprocesses."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.optimize.conftest import write_study

GENESIS = [sys.executable, "-m", "genesis_tui.cli"]


def _genesis(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GENESIS, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    directory = tmp_path_factory.mktemp("cli")
    study = write_study(directory, name="cli-study", oos=0.2)
    db = directory / "store.db"
    result = _genesis("run", str(study), "--db", str(db), "--json", "--report", str(directory / "reports"))
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout
    return directory, db, json.loads(lines[0])


def test_run_json_prints_one_summary_object(finished: tuple[Path, Path, dict]) -> None:
    _, db, summary = finished
    assert summary["study"] == "cli-study" and summary["state"] == "complete"
    assert summary["trials"] == summary["complete"] > 0
    assert summary["best"]["params"]["fast"] < summary["best"]["params"]["slow"]
    assert summary["db"] == str(db)


def test_run_writes_the_report_files(finished: tuple[Path, Path, dict]) -> None:
    directory, _, summary = finished
    md = (directory / "reports" / "cli-study.md").read_text()
    report = json.loads((directory / "reports" / "cli-study.json").read_text())
    assert "## Best trial" in md and "Validation" in md
    assert report["best"]["number"] == summary["best"]["number"]
    assert report["validation"] is not None


def test_report_from_the_store_alone(finished: tuple[Path, Path, dict]) -> None:
    _, db, summary = finished
    as_json = _genesis("report", "cli-study", "--db", str(db), "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["counts"]["complete"] == summary["complete"]
    assert report["best"]["key"] == summary["best"]["key"]
    as_md = _genesis("report", "cli-study", "--db", str(db))
    assert as_md.returncode == 0 and as_md.stdout.startswith("# Study `cli-study`")


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_trials_export(finished: tuple[Path, Path, dict], suffix: str) -> None:
    directory, db, summary = finished
    out = directory / f"trials.{suffix}"
    result = _genesis("trials", "cli-study", "--db", str(db), "--export", str(out))
    assert result.returncode == 0, result.stderr
    if suffix == "csv":
        with out.open() as handle:
            rows = list(csv.DictReader(handle))
        numbers = sorted(int(r["number"]) for r in rows)
        assert {"param.fast", "param.slow", "metric.sharpe", "objective", "state"} <= set(rows[0])
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(out)
        numbers = sorted(table.column("number").to_pylist())
    assert numbers == list(range(summary["trials"]))


def test_run_again_resumes_and_runs_nothing_new(finished: tuple[Path, Path, dict]) -> None:
    directory, db, summary = finished
    result = _genesis("run", str(directory / "cli-study.toml"), "--db", str(db), "--json")
    assert result.returncode == 0, result.stderr
    again = json.loads(result.stdout)
    assert again["trials"] == summary["trials"] and again["best"]["key"] == summary["best"]["key"]


def test_plain_progress_lines_when_stdout_is_not_a_terminal(tmp_path: Path) -> None:
    study = write_study(tmp_path, name="plain")
    result = _genesis("run", str(study), "--db", str(tmp_path / "s.db"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("plain: ") and "trials" in line and "ETA" in line for line in lines)
    assert "\x1b[" not in result.stdout  # no terminal control codes
    assert "complete" in lines[-1]


@pytest.mark.parametrize("command", [
    ["report", "nope"],
    ["trials", "nope", "--export", "x.csv"],
    ["resume", "nope"],
])
def test_unknown_study_is_one_line_exit_2(tmp_path: Path, command: list[str]) -> None:
    study = write_study(tmp_path, name="known")
    db = tmp_path / "s.db"
    assert _genesis("run", str(study), "--db", str(db), "--json").returncode == 0
    result = _genesis(*command, "--db", str(db))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no study named 'nope'" in lines[0] and "known" in lines[0]


def test_bad_study_file_is_one_line_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    study = write_study(tmp_path, name="bad")
    study.write_text(study.read_text().replace('sampler = "grid"', 'sampler = "grid"\nbogus = 1'))
    db = tmp_path / "s.db"
    result = _genesis("run", str(study), "--db", str(db))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "search.bogus" in lines[0]
    assert not db.exists()


def test_bad_export_suffix_is_one_line_exit_2(finished: tuple[Path, Path, dict]) -> None:
    directory, db, _ = finished
    result = _genesis("trials", "cli-study", "--db", str(db), "--export", str(directory / "x.xlsx"))
    assert result.returncode == 2 and "expected a .csv or .parquet" in result.stderr


def test_missing_data_file_is_exit_2_and_leaves_no_store(tmp_path: Path) -> None:
    study = write_study(tmp_path, name="nodata")
    study.write_text(study.read_text().replace('spec = "synthetic:bars=3000,seed=11,timeframe=1m"',
                                               f'spec = "csv:{tmp_path / "missing.csv"}"'))
    db = tmp_path / "s.db"
    result = _genesis("run", str(study), "--db", str(db))
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "missing.csv" in result.stderr
    if db.exists():  # other components may keep their own tables in the file; no study is written
        import sqlite3

        with sqlite3.connect(db) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "studies" in tables:
                assert conn.execute("SELECT count(*) FROM studies").fetchone()[0] == 0
