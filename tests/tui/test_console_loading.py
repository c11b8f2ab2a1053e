"""Pilot test: a study whose data downloads shows the download in the Optimizer pane and the status
line until its trials start (a local archive server that holds files until the test lets them go)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import Label

from engine.runtime import Engine
from genesis_tui.app import GenesisApp, status_line
from tests.data_remote.archive import ArchiveServer, ThreadedArchiveServer, build_archive
from tests.tui.test_console_engine import make_app, study_shows, wait_for

STUDY = """\
name = "loading"

[data]
spec = "binance:BTCUSDT,market=spot,interval=1h,start=2023-01-01,end=2023-04-01"

[strategy]
name = "sma_cross"

[space]
fast = { int = [3, 10] }
slow = { int = [20, 40], step = 10 }

[search]
sampler = "grid"
trials = 8

[execution]
backend = "inline"
"""


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ArchiveServer]:
    with ThreadedArchiveServer(tmp_path / "archive") as server:
        monkeypatch.setenv("GENESIS_BINANCE_ARCHIVE_URL", server.url)
        build_archive(server.root, "BTCUSDT", "1h", market="spot", months=[(2023, 1), (2023, 2), (2023, 3)])
        try:
            yield server
        finally:
            server.release()  # never leave the study's loader waiting on the server


def figures(app: GenesisApp) -> str:
    return str(app.query_one("#study-figures", Label).content)


async def test_the_optimizer_shows_the_data_loading_until_the_trials_start(
    archive: ArchiveServer, tmp_path: Path
) -> None:
    archive.hold_zips_after(1)  # January arrives, February and March wait for the test
    study = tmp_path / "loading.toml"
    study.write_text(STUDY)
    engine = Engine(db=tmp_path / "store.db", workspace="pilot", backend="inline", monitor=False)
    app, handle = make_app(engine, study)
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.press("2")
            await wait_for(pilot, study_shows(app, lambda s: s.loading is not None and s.loading.done == 1), "1 file")
            await wait_for(pilot, lambda: "loading data: BTCUSDT 1/3 files" in figures(app), "the pane's loading line")
            assert app.last_telemetry is not None
            assert "loading data: BTCUSDT 1/3 files" in status_line(app.last_telemetry).plain

            archive.release()
            await wait_for(pilot, study_shows(app, lambda s: s.loading is None and s.done > 0), "trials")
            await wait_for(pilot, lambda: "trials" in figures(app), "the trials' figures")
            assert "loading data" not in figures(app)
    finally:
        await handle.close()
