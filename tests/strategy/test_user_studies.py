"""User strategies in studies: every backend runs the file by content, resumes check the file's hash."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.optimize.study import Study
from tests.headless.conftest import genesis, stored_trials
from tests.strategy.conftest import FILES

STUDY = """\
name = "{name}"

[data]
spec = "synthetic:bars=4000,seed=5,timeframe=1m"

[strategy]
name = "sma_cross"
{file_line}
[space]
fast = {{ int = [2, 20], step = 3 }}
slow = {{ int = [10, 60], step = 10 }}
constraints = ["fast < slow"]

[backtest]
fee = 0.001

[search]
sampler = "grid"
objective = "sharpe"

[execution]
backend = "{backend}"
workers = 2
batch_size = 16
checkpoint_every = 8

[validation]
out_of_sample = 0.0
"""


def _study(directory: Path, name: str, backend: str, *, user: bool) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if user:
        shutil.copy(FILES / "clean.py", directory / "mine.py")
    path = directory / f"{name}.toml"
    path.write_text(STUDY.format(name=name, backend=backend, file_line='file = "mine.py"' if user else ""))
    return path


def _objectives(db: Path, name: str) -> dict[str, float | None]:
    return {key: value[2] for key, value in stored_trials(db, name).items()}


@pytest.mark.parametrize("backend", ["inline", "process", "dask"])
def test_a_user_strategy_study_equals_the_builtin_on_every_backend(tmp_path: Path, backend: str) -> None:
    db = tmp_path / "s.db"
    builtin = genesis("run", _study(tmp_path / "a", "builtin", "inline", user=False), "--db", db, "--headless")
    assert builtin.returncode == 0, builtin.stderr
    user = genesis("run", _study(tmp_path / "b", "user", backend, user=True), "--db", db, "--headless")
    assert user.returncode == 0, user.stderr
    expected = _objectives(db, "builtin")
    assert len(expected) > 20
    assert _objectives(db, "user") == expected  # same keys, bit-equal objectives


async def test_resuming_after_the_strategy_file_changed_is_refused_unless_allowed(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    study = _study(tmp_path / "c", "edited", "inline", user=True)
    await Study.from_file(study, db=db).run()
    mine = tmp_path / "c" / "mine.py"
    mine.write_text(mine.read_text() + "\n# an edit\n")
    with pytest.raises(ConfigError) as refused:
        await Study.from_file(study, db=db).run()
    message = str(refused.value)
    assert "strategy file changed since the study started" in message and "--allow-changed-strategy" in message
    await Study.from_file(study, db=db, allow_changed_strategy=True).run()  # goes on
    cli = genesis("resume", "edited", "--db", db, "--headless")
    assert cli.returncode == 0, cli.stderr  # complete: nothing left to run, nothing mixed


async def test_a_stored_user_study_is_found_by_name_with_its_relative_file(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    study = _study(tmp_path / "d", "byname", "inline", user=True)
    await Study.from_file(study, db=db).run()
    stored = await Study.from_store("byname", db=db)
    assert stored.spec.source is not None and stored.spec.source.path == str(tmp_path / "d" / "mine.py")
    assert stored.spec.source.hash == Study.from_file(study, db=db).spec.source.hash


def test_a_study_of_a_cheating_strategy_warns_before_it_starts(tmp_path: Path) -> None:
    directory = tmp_path / "e"
    directory.mkdir()
    shutil.copy(FILES / "cheats.py", directory / "mine.py")
    study = directory / "cheat.toml"
    study.write_text(STUDY.format(name="cheat", backend="inline", file_line='file = "mine.py"')
                     .replace('name = "sma_cross"', 'name = "rolled"')
                     .replace('fast = { int = [2, 20], step = 3 }\nslow = { int = [10, 60], step = 10 }\n'
                              'constraints = ["fast < slow"]', 'window = { int = [5, 10] }'))
    result = genesis("run", study, "--db", tmp_path / "s.db", "--headless")
    assert result.returncode == 0, result.stderr
    warning = [line for line in result.stderr.splitlines() if "look-ahead" in line]
    assert len(warning) == 1 and "genesis check" in warning[0] and "rolled(" in warning[0]


async def test_the_report_names_the_strategy_file_and_its_hash(tmp_path: Path) -> None:
    from engine.optimize.report import render_markdown, report_from_db

    db = tmp_path / "s.db"
    study = _study(tmp_path / "f", "reported", "inline", user=True)
    ran = Study.from_file(study, db=db)
    await ran.run()
    report = await report_from_db(db, "reported")
    assert report["strategy_file"] == str(tmp_path / "f" / "mine.py")
    assert ran.spec.source is not None and report["strategy_sha256"] == ran.spec.source.hash
    assert f"file `{tmp_path / 'f' / 'mine.py'}`" in render_markdown(report)


@pytest.mark.parametrize("name", ["keltner_breakout", "rsi_trend", "macd_atr_trail"])
def test_each_example_strategy_has_a_study_file_that_loads(name: str) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples" / "strategies"
    study = Study.from_file(examples / f"{name}.toml", db=Path("unused.db"))
    assert study.spec.strategy.name == name and study.spec.source is not None
    assert study.spec.source.path == str(examples / f"{name}.py")
