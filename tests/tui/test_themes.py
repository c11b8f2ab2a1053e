"""Theme files: bundled ones load, user files extend or replace them, bad ones are skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.paths import config_dir
from genesis_tui.app import GenesisApp
from genesis_tui.themes import (
    bundled_theme_dirs,
    load_theme_file,
    load_themes,
    remember_theme,
    remembered_theme,
)
from tests.tui.fixtures import FixedSource, telemetry_fixture

GOOD = """\
name = "ocean"
dark = true
primary = "#3377AA"
background = "#001122"
[variables]
chart-1 = "#FF00FF"
"""


def test_bundled_themes_cover_dark_light_and_high_contrast() -> None:
    names = {t.name for t in load_themes(bundled_theme_dirs()).themes}
    assert {"genesis-dark", "genesis-light", "genesis-high-contrast"} <= names
    light = next(t for t in load_themes(bundled_theme_dirs()).themes if t.name == "genesis-light")
    assert light.dark is False
    assert light.variables["chart-1"] == "#1F6FB2"


def test_user_theme_loads_with_our_variable_defaults(tmp_path: Path) -> None:
    path = tmp_path / "ocean.toml"
    path.write_text(GOOD)
    theme = load_theme_file(path)
    assert theme.name == "ocean"
    assert theme.variables["chart-1"] == "#FF00FF"
    assert "heat-high" in theme.variables  # filled from the defaults


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('name = "x"\nprimary = "#12345"\n', "primary: expected a colour"),
        ('name = "x"\nprimary = "#123456"\nshade = 1\n', "shade: unknown key"),
        ('primary = "#123456"\n', "name"),
        ('name = "x" primary', "invalid TOML"),
    ],
)
def test_bad_theme_file_is_one_line_error(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_theme_file(path)
    message = str(error.value)
    assert str(path) in message and expected in message and "\n" not in message


async def test_invalid_user_theme_is_skipped_with_a_notification() -> None:
    user = config_dir() / "themes"
    user.mkdir(parents=True)
    (user / "ocean.toml").write_text(GOOD)
    (user / "broken.toml").write_text('name = "broken"\nprimary = "not-a-colour"\n')
    app = GenesisApp(FixedSource(telemetry_fixture()), poll=False, remember=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert "ocean" in app.available_themes
        assert "broken" not in app.available_themes
        messages = [n.message for n in app._notifications]
        assert any("broken.toml" in m and "primary" in m for m in messages)
        app.action_set_theme("ocean")
        await pilot.pause()
        assert app.theme == "ocean"
        assert app.theme_variables["chart-1"] == "#FF00FF"


def test_unknown_remembered_theme_falls_back_to_default() -> None:
    remember_theme("gone-theme")
    assert remembered_theme() == "gone-theme"
    app = GenesisApp(FixedSource(telemetry_fixture()), poll=False, remember=False)
    assert app.theme == "genesis-dark"
    assert any("gone-theme" in p for p in app.theme_problems)


def test_corrupt_state_file_is_ignored() -> None:
    path = config_dir() / "console-state.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    assert remembered_theme() is None
    remember_theme("genesis-light")
    assert remembered_theme() == "genesis-light"


def test_wheel_ships_the_bundled_themes_where_the_console_looks() -> None:
    """pyproject installs themes/*.toml to <prefix>/share/genesis/themes, a directory
    the console searches, so a non-editable install finds the same themes."""
    import sys
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    data_files = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    shipped = {Path(p).name for pattern in data_files["share/genesis/themes"] for p in root.glob(pattern)}
    assert shipped == {p.name for p in (root / "themes").glob("*.toml")} and shipped
    assert Path(sys.prefix) / "share" / "genesis" / "themes" in bundled_theme_dirs()
