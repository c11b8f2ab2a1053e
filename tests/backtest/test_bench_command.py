"""``genesis bench``: discovery of benchmark modules, JSON shape, goals and --strict."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

import benchmarks.suite as suite
from genesis_tui.cli import main


def test_discovers_every_module_with_run_quick() -> None:
    registry = suite.discover()
    assert "backtest" in registry
    assert "suite" not in registry
    for function in registry.values():
        assert callable(function)


def test_discovery_reads_names_and_imports_nothing_until_run() -> None:
    """``bench --list`` finds the modules by name: no benchmark module, no console, no textual."""
    code = (
        "import sys\n"
        "from genesis_tui.cli import main\n"
        "assert main(['bench', '--list', '--json']) == 0\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('benchmarks.', 'textual', 'genesis_tui.app')))\n"
        "assert loaded == ['benchmarks.suite'], loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    names = json.loads(result.stdout)
    assert "console" in names and "backtest" in names
    assert "bus_soak" not in names  # a script without run(quick) is not a benchmark


def fake_registry() -> dict[str, Any]:
    def good(quick: bool) -> dict[str, Any]:
        return {"part": {"ratio": 1.2, "meets_goal": True}, "bars": 10, "quick": quick, "inf": float("inf")}

    def missed(quick: bool) -> dict[str, Any]:
        return {"ratio": 2.0, "speed_meets_goal": False}

    def broken(quick: bool) -> dict[str, Any]:
        raise RuntimeError("boom")

    return {"good": good, "missed": missed, "broken": broken}


def bench(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["bench", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_report(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(suite, "discover", fake_registry)
    code, out, _ = bench(capsys, "--quick", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["quick"] is True
    assert set(report["modules"]) == {"good", "missed", "broken"}
    assert report["modules"]["good"]["figures"]["part"] == {"ratio": 1.2, "meets_goal": True}
    assert report["modules"]["good"]["figures"]["inf"] is None
    assert "RuntimeError: boom" in report["modules"]["broken"]["figures"]["error"]
    assert report["goals"] == {"good.part.meets_goal": True, "missed.speed_meets_goal": False}
    assert report["all_goals_met"] is False
    assert report["failed_modules"] == ["broken"]


def test_strict_and_only(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(suite, "discover", fake_registry)
    assert bench(capsys, "--only", "good", "--strict")[0] == 0
    assert bench(capsys, "--only", "missed", "--strict")[0] == 1
    code, out, err = bench(capsys, "--only", "good")
    assert code == 0
    assert "part.ratio" in out and "1.2" in out
    code, _, err = bench(capsys, "--only", "nope")
    assert code == 2 and "unknown benchmark 'nope'" in err
