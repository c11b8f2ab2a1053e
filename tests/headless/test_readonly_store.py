"""A store on a read-only mount is still readable by report, trials and replay."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from tests.headless.conftest import env, genesis, write_study


def _on_a_read_only_mount(source: Path, target: Path, *commands: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``commands`` in a private mount namespace where ``target`` is ``source`` mounted read-only."""
    target.mkdir()
    script = " && ".join(
        [f"mount --bind {shlex.quote(str(source))} {shlex.quote(str(target))}",
         f"mount -o remount,bind,ro {shlex.quote(str(target))}",
         *(" ".join(map(shlex.quote, command)) for command in commands)]
    )
    return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300,
                          env=env())


def test_report_trials_and_replay_read_a_read_only_store(tmp_path: Path) -> None:
    source = tmp_path / "store"
    source.mkdir()
    study = write_study(tmp_path, name="ro")
    assert genesis("run", study, "--db", source / "s.db", "--quiet").returncode == 0
    db = tmp_path / "mounted" / "s.db"
    cli = [sys.executable, "-m", "genesis_tui.cli"]
    result = _on_a_read_only_mount(
        source, tmp_path / "mounted",
        ["sh", "-c", f"touch {shlex.quote(str(db))}.probe 2>/dev/null && echo writable || echo read-only"],
        [*cli, "report", "ro", "--db", str(db), "--format", "json"],
        [*cli, "trials", "ro", "--db", str(db), "--export", str(tmp_path / "t.csv")],
        [*cli, "replay", "ro", "--db", str(db), "--list"],
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "read-only"
    report = json.loads("\n".join(lines[1 : lines.index("}") + 1]))
    assert report["study"] == "ro" and report["trials"] > 0
    assert (tmp_path / "t.csv").read_text().count("\n") == report["trials"] + 1
    assert "recording 1" in result.stdout
