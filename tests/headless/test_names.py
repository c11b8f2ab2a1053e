"""Study names become file and folder names: only a safe set is accepted, and no name leaves its folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.paths import check_name, check_stored_name, named_path
from tests.headless.conftest import genesis, write_study


def _tree(root: Path) -> dict[str, bytes | str]:
    """Every path under ``root`` with its content (files) or link target (symlinks)."""
    out: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            out[key] = f"-> {path.readlink()}"
        elif path.is_file():
            out[key] = path.read_bytes()
        else:
            out[key] = "dir"
    return out


@pytest.mark.parametrize("name", ["..", ".", "a/b", "a\\b", "a\x00b", "a\x1b[31mb", "a\nb", "-rf", " x", "", "x" * 101])
def test_a_study_file_with_an_unsafe_name_is_refused_and_nothing_changes(tmp_path: Path, name: str) -> None:
    work = tmp_path / "v"
    (work / "reports").mkdir(parents=True)
    (work / "latest").write_text("keep me")
    study = write_study(tmp_path, name="placeholder")
    text = study.read_text().replace('name = "placeholder"', f"name = {_toml_string(name)}")
    study.write_text(text)
    before = _tree(tmp_path)
    result = genesis("run", study, "--headless", "--db", work / "s.db", "--report", work / "reports")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not a valid study name" in lines[0] and "name" in lines[0]
    assert "\x1b" not in result.stderr and "\x00" not in result.stderr  # shown escaped, never raw
    assert _tree(tmp_path) == before


def _toml_string(text: str) -> str:
    escaped = "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in text)
    return f'"{escaped}"'


def test_a_lookup_by_an_unsafe_name_is_refused_with_one_line(tmp_path: Path) -> None:
    result = genesis("report", "a\x1b[2Jb", "--db", tmp_path / "s.db")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "\x1b" not in result.stderr and "is not a study name" in result.stderr


def test_names_follow_the_rule() -> None:
    for good in ("sma-nightly", "a", "A.b_c-1", "9" * 100):
        assert check_name(good, "name") == good
    for bad in ("..", "a b", "a/b", "_x", "x" * 101):
        with pytest.raises(ConfigError):
            check_name(bad, "name")
    assert check_stored_name("sma@2026-11-22T03:51:09Z") == "sma@2026-11-22T03:51:09Z"


def test_named_paths_stay_in_their_folder(tmp_path: Path) -> None:
    assert named_path(tmp_path, "sma", ".md") == tmp_path / "sma.md"
    assert named_path(tmp_path, "sma@2026-11-22T03:51:09Z").parent == tmp_path
    for bad in ("..", "a/b", "../x", "a\x00b"):
        with pytest.raises(ConfigError):
            named_path(tmp_path, bad)
