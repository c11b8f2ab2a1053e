"""Hostile theme files (not UTF-8, nested without end, a symlink to /dev/zero) are skipped
with a one-line problem, never a crash, and the good themes beside them still load."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.paths import config_dir
from genesis_tui.app import GenesisApp
from genesis_tui.themes import load_theme_file, load_themes, remember_theme, remembered_theme
from tests.tui.fixtures import FixedSource, telemetry_fixture

GOOD = 'name = "ocean"\nprimary = "#3377AA"\n'

HOSTILE = {
    "latin1.toml": ('name = "caf\xe9"\nprimary = "#123456"\n'.encode("latin-1"), "not UTF-8"),
    "nested.toml": (("name = \"deep\"\nprimary = \"#123456\"\nx = " + "[" * 5000 + "]" * 5000).encode(), "nested deeper"),
    "dotted.toml": (('name = "dots"\nprimary = "#123456"\n' + ".".join(["v"] * 5000) + " = 1\n").encode(), "nested deeper"),
    "nan.toml": (b'name = "nan"\nprimary = "#123456"\ntext_alpha = nan\n', "expected a finite number"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_theme_file_is_a_one_line_config_error(tmp_path: Path, name: str) -> None:
    content, expected = HOSTILE[name]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ConfigError) as error:
        load_theme_file(path)
    message = str(error.value)
    assert message.startswith(str(path)) and expected in message and "\n" not in message


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_theme_symlinked_to_dev_zero_is_refused_not_read(tmp_path: Path) -> None:
    path = tmp_path / "zero.toml"
    os.symlink("/dev/zero", path)
    with pytest.raises(ConfigError, match=r"zero\.toml: larger than \d+ bytes"):
        load_theme_file(path)


def test_hostile_themes_are_skipped_beside_a_good_one(tmp_path: Path) -> None:
    for name, (content, _) in HOSTILE.items():
        (tmp_path / name).write_bytes(content)
    if Path("/dev/zero").exists():
        os.symlink("/dev/zero", tmp_path / "zero.toml")
    (tmp_path / "ocean.toml").write_text(GOOD)
    loaded = load_themes([tmp_path])
    assert [theme.name for theme in loaded.themes] == ["ocean"]
    skipped = len(HOSTILE) + (1 if Path("/dev/zero").exists() else 0)
    assert len(loaded.problems) == skipped
    assert all(problem.startswith("theme skipped: ") and "\n" not in problem for problem in loaded.problems)


def test_a_huge_colour_value_is_cut_in_the_message(tmp_path: Path) -> None:
    path = tmp_path / "long.toml"
    path.write_text(f'name = "long"\nprimary = "{"z" * 500_000}"\n')
    with pytest.raises(ConfigError) as error:
        load_theme_file(path)
    assert "primary: expected a colour" in str(error.value)
    assert len(str(error.value)) < 400


async def test_console_starts_with_a_non_utf8_user_theme_and_notifies() -> None:
    user = config_dir() / "themes"
    user.mkdir(parents=True)
    (user / "latin1.toml").write_bytes(HOSTILE["latin1.toml"][0])
    (user / "ocean.toml").write_text(GOOD)
    app = GenesisApp(FixedSource(telemetry_fixture()), poll=False, remember=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert "ocean" in app.available_themes
        messages = [n.message for n in app._notifications]
        assert any("latin1.toml" in m and "not UTF-8" in m for m in messages)


def test_state_file_nested_without_end_is_ignored() -> None:
    path = config_dir() / "console-state.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert remembered_theme() is None
    remember_theme("genesis-light")
    assert remembered_theme() == "genesis-light"
