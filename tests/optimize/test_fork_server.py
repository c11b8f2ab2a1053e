"""Starting the fork server before the engine loads: the cheap peek at the backend, and imports without numba."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.optimize.fork_server import wants_process_backend


def _run_driver(tmp_path: Path, code: str, env: dict[str, str] | None = None) -> str:
    """Run ``code`` as the script ``driver.py`` (a real ``__main__``, which the fork server re-imports);
    its stdout, after asserting it exited 0."""
    script = tmp_path / "driver.py"
    script.write_text(code)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=False,
                          cwd=Path.cwd(), env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize(
    ("text", "override", "expected"),
    [
        ("[execution]\nbackend = \"process\"\n", None, True),
        ("[search]\nsampler = \"grid\"\n", None, True),  # the default backend
        ("[execution]\nbackend = \"inline\"\n", None, False),
        ("[execution]\nbackend = \"dask\"\n", None, False),
        ("[execution]\nbackend = \"inline\"\n", "process", True),
        ("[execution]\nbackend = \"process\"\n", "inline", False),
        ("not = [toml\n", None, False),  # the study loader reports it; no server for a bad file
    ],
)
def test_wants_process_backend(tmp_path: Path, text: str, override: str | None, expected: bool) -> None:
    path = tmp_path / "study.toml"
    path.write_text(text)
    assert wants_process_backend(path, override) is expected


def test_a_missing_study_file_starts_no_server(tmp_path: Path) -> None:
    assert wants_process_backend(tmp_path / "absent.toml") is False


@pytest.mark.parametrize(
    "code",
    [
        "import engine.backtest.options, engine.optimize.fork_server",
        "from genesis_tui.cli import build_parser; build_parser()",
    ],
)
def test_the_command_line_parser_does_not_load_numba(code: str) -> None:
    """Building every subcommand's parser (``--fee`` and friends included) leaves numba unloaded,
    so ``genesis run`` can start the workers' fork server before its own heavy imports."""
    check = f"{code}\nimport sys\nassert 'numba' not in sys.modules, 'numba loaded'\n"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_command_line_parser_does_not_load_numpy() -> None:
    """Every subcommand's flags (``--fee`` and friends, from the backtest options) are built without
    numpy: ``genesis --help`` stays light, and ``genesis run`` parses its arguments sooner."""
    check = "from genesis_tui.cli import build_parser; build_parser()\nimport sys\nassert 'numpy' not in sys.modules\n"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_package_names_still_resolve() -> None:
    import engine.backtest as backtest
    from engine.backtest import Options, run
    from engine.backtest.api import run as api_run
    from engine.backtest.options import BacktestOptions

    assert run is api_run and Options is BacktestOptions and backtest.Options is BacktestOptions
    with pytest.raises(AttributeError):
        _ = backtest.no_such_name


def test_the_console_reaches_its_first_frame_without_numba() -> None:
    """The demo console's start-up imports (engine, runtime, app) leave numba unloaded: it costs 0.3 s
    of the first frame (benchmarks.console), and the analysis kernels once pulled it in through the watch."""
    code = ("import sys; from engine.demo import demo_engine, start_demo; from engine.runtime import EngineThread; "
            "from genesis_tui.app import GenesisApp; print('numba' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_a_process_backend_study_runs_without_numba_in_the_driver(tmp_path: Path) -> None:
    """The driver of a ``process`` study with nothing to re-run (no hold-out, no walk-forward, the best
    curve stored, no per-block figures) runs no kernel, so it never loads numba (about 1 s of a short
    study's start-up): the strategy's definition, the sampler, the store and the validation's deflated
    Sharpe (from the stored curve) all come without it."""
    from tests.optimize.conftest import write_study

    path = write_study(tmp_path, backend="process", sampler="random", trials=12, artifacts="top:2",
                       search_extra="", oos=0.0)
    path.write_text(path.read_text() + "blocks = 0\n")
    code = (
        "import asyncio, sys\n"
        "from engine.optimize import Study\n"
        f"study = Study.from_file({str(path)!r}, db={str(tmp_path / 's.db')!r})\n"
        "summary = asyncio.run(study.run())\n"
        "assert summary.trials == 12 and summary.validation['deflated_sharpe'] is not None, summary\n"
        "print('numba' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=Path.cwd())
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


def test_the_fork_server_skips_its_teardown_and_other_processes_keep_theirs(tmp_path: Path) -> None:
    """The server leaves at exit without the interpreter's teardown (numba's and LLVM's held the
    command's output pipes open 0.3-0.8 s after it exited); a driver importing the same preload
    module keeps its own exit handlers. A marker module registers a handler before the preload runs:
    it must not run in the server, and must run in the driver."""
    (tmp_path / "exit_marker.py").write_text(
        "import atexit, os, sys\n"
        "def _mark():\n"
        f"    open(os.path.join({str(tmp_path)!r}, 'teardown-' + str(os.getpid())), 'w').close()\n"
        "atexit.register(_mark)\n"
    )
    code = (
        "import multiprocessing, os, sys\n"
        "from engine.optimize.fork_server import PRELOAD, in_fork_server\n"
        "def probe():\n"
        "    return None\n"
        "if __name__ == '__main__':\n"
        "    import exit_marker, importlib\n"
        "    importlib.import_module(PRELOAD)  # the driver imports it too (the kernels' warm-up)\n"
        "    assert not in_fork_server()\n"
        "    ctx = multiprocessing.get_context('forkserver')\n"
        "    ctx.set_forkserver_preload(['exit_marker', PRELOAD])\n"
        "    p = ctx.Process(target=probe)\n"
        "    p.start(); p.join()\n"
        "    assert p.exitcode == 0\n"
        "    print(os.getpid())\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    driver = _run_driver(tmp_path, code, env=env).strip()
    # Reading the pipes to their end waited for the server too: every process has ended by now.
    marks = sorted(path.name for path in tmp_path.glob("teardown-*"))
    assert marks == [f"teardown-{driver}"], marks


@pytest.mark.parametrize("sampler", ["random", "grid"])
def test_a_headless_run_with_its_report_keeps_numba_out_of_the_driver(tmp_path: Path, sampler: str) -> None:
    """``genesis run --headless`` of a small process-backend study with the default validation
    (16 blocks: PBO) and report (overfitting section: PBO, stability, Monte Carlo of the best
    trades) never loads numba in the driver: the analyses run their numpy twins at this size."""
    from tests.optimize.conftest import write_study

    path = write_study(tmp_path, backend="process", sampler=sampler, trials=30 if sampler == "random" else None,
                       artifacts="top:3", oos=0.0)
    code = (
        "import sys\n"
        "if __name__ == '__main__':\n"
        "    from genesis_tui.cli import main\n"
        f"    sys.argv = ['genesis', 'run', {str(path)!r}, '--headless', '--db', {str(tmp_path / 's.db')!r},\n"
        f"                '--report', {str(tmp_path / 'reports')!r}]\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit as done:\n"
        "        assert not done.code, done.code\n"
        "    print('numba' in sys.modules)\n"
    )
    stdout = _run_driver(tmp_path, code)
    assert stdout.strip().splitlines()[-1] == "False", stdout[-2000:]
    import json

    report = json.loads(next((tmp_path / "reports").rglob("report.json")).read_text())
    overfitting = report["overfitting"]
    assert overfitting["pbo"] is not None and overfitting["blocks"] == 16
    assert overfitting["monte_carlo"] is not None and overfitting["stability"] is not None
    assert report["validation"]["pbo"]["pbo"] == overfitting["pbo"]


def test_the_driver_warms_kernels_only_when_it_runs_them(tmp_path: Path) -> None:
    """With worker processes and nothing to re-run, the driver loads no numba while the workers
    start, however large the study (its PBO, if too large for numpy, runs in a child of the fork
    server); inline trials warm the kernels."""
    from types import SimpleNamespace

    from engine.analysis.pbo import NUMPY_MAX_CELLS
    from engine.optimize import Study
    from engine.optimize.study import _driver_warm_up, _warm_kernels
    from tests.optimize.conftest import write_study

    spec = Study.from_file(write_study(tmp_path, backend="process", oos=0.0), db=tmp_path / "s.db").spec
    process = SimpleNamespace(name="process")
    pairs = math.comb(15, 7)  # 16 blocks by default
    assert _driver_warm_up(spec, process, 50) is None  # type: ignore[arg-type]
    assert _driver_warm_up(spec, process, NUMPY_MAX_CELLS // pairs + 1) is None  # type: ignore[arg-type]
    assert _driver_warm_up(spec, SimpleNamespace(name="inline"), 50) is _warm_kernels  # type: ignore[arg-type]


def test_a_pbo_too_large_for_numpy_runs_in_a_child_of_the_fork_server(tmp_path: Path) -> None:
    """A process-backend study whose CSCV is past numpy's share (trials x split pairs) stores the PBO
    computed in a child of the fork server: the driver never loads numba, and the figures are those
    the driver would have computed itself (checked after, in the same process, through numba)."""
    from tests.optimize.conftest import write_study

    db = str(tmp_path / "s.db")
    path = write_study(tmp_path, backend="process", fast_high=40, fast_step=1, slow_high=200, artifacts="top:2",
                       oos=0.0)
    code = (
        "import asyncio, math, sys\n"
        "if __name__ == '__main__':\n"
        "    from engine.analysis.pbo import NUMPY_MAX_CELLS\n"
        "    from engine.optimize import Study\n"
        f"    study = Study.from_file({str(path)!r}, db={db!r})\n"
        "    summary = asyncio.run(study.run())\n"
        "    assert summary.trials * math.comb(15, 7) > NUMPY_MAX_CELLS, summary.trials\n"
        "    print('numba' in sys.modules)\n"
        "    from engine.optimize.overfitting import pbo_figures\n"
        "    from engine.store.factory import open_study_store\n"
        "    async def figures():\n"
        f"        store = await open_study_store({db!r}, readonly=True)\n"
        "        try:\n"
        "            found = await store.require_study(study.name)\n"
        "            return (await store.trial_blocks(found.id))[1]\n"
        "        finally:\n"
        "            await store.close()\n"
        "    import numba  # noqa: F401 - the driver's own figures, through the kernel\n"
        "    here = pbo_figures(asyncio.run(figures()), 7)\n"
        "    print(here == summary.validation['pbo'], here['splits'])\n"
    )
    lines = _run_driver(tmp_path, code).split()
    assert lines == ["False", "True", "12870"], lines


def test_the_fork_server_freezes_what_it_loaded_and_other_processes_do_not() -> None:
    """Workers fork from a server whose objects (numpy, numba, LLVM) sit in the collector's permanent
    generation, so their collections never walk (and copy) them; a driver importing the same preload
    module (the kernels' warm-up) keeps its collector as it was."""
    import gc
    import importlib

    from engine.optimize.fork_server import PRELOAD, call_in_fork_server

    importlib.import_module(PRELOAD)
    assert gc.get_freeze_count() == 0
    assert call_in_fork_server(gc.get_freeze_count) > 10_000


_KERNEL_PROBE = """\
import os, sys
from engine.optimize.fork_server import STUDY_ENV, call_in_fork_server, start_fork_server


def loaded():
    from engine.backtest import nb

    return {{
        "cross_long_close": bool(nb.simulate_many_variant(True, False, cross_long=True).signatures),
        "cross_long_next_open": bool(nb.simulate_many_variant(False, False, cross_long=True).signatures),
        "generic": bool(nb.simulate_variant(False, False).signatures),
    }}


if __name__ == "__main__":
    start_fork_server({study!r})
    print(STUDY_ENV in os.environ, call_in_fork_server(loaded))
"""


_CLOSE = ("[backtest]\n", '[backtest]\nfill = "close"\n')
_ONLY_GENERIC = {"cross_long_close": False, "cross_long_next_open": False, "generic": True}


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        ([_CLOSE], {"cross_long_close": True, "cross_long_next_open": False, "generic": False}),
        (None, _ONLY_GENERIC),  # no study named
        ([("[backtest]\n", '[backtest]\nfill = "sideways"\n')], _ONLY_GENERIC),  # the loader refuses it
        ([_CLOSE, ('name = "sma_cross"', 'name = "mine"')], _ONLY_GENERIC),  # not a built-in
    ],
)
def test_the_fork_server_loads_the_kernels_of_the_study_it_was_started_for(
    tmp_path: Path, edits: list[tuple[str, str]] | None, expected: dict[str, bool]
) -> None:
    """A server started for a study loads the batched kernel its ``[backtest]`` picks (``sma_cross``, long,
    ``fill = "close"``) and not the generic one, so workers find theirs in memory; started for no study,
    for one the loader will refuse, or for a strategy that is not built in (workers load those from
    their content), it loads the generic kernel (numba's start-up with it). The variable that names
    the study to the server does not stay in the caller's environment."""
    from tests.optimize.conftest import write_study

    study = None
    if edits is not None:
        path = write_study(tmp_path, backend="process")
        text = path.read_text()
        for old, new in edits:
            assert old in text
            text = text.replace(old, new)
        path.write_text(text)
        study = str(path)
    stdout = _run_driver(tmp_path, _KERNEL_PROBE.format(study=study))
    assert stdout.strip() == f"False {expected}", stdout


def test_a_study_that_is_a_pipe_is_not_read_by_the_fork_server(tmp_path: Path) -> None:
    """``genesis run <(cat study.toml)`` names a pipe that only the command may read (once): the server
    is not told it (it would wait on the pipe, or take the command's bytes) and loads the generic kernel."""
    fifo = tmp_path / "study.toml"
    os.mkfifo(fifo)
    stdout = _run_driver(tmp_path, _KERNEL_PROBE.format(study=str(fifo)))
    assert stdout.strip() == f"False {_ONLY_GENERIC}", stdout


def test_the_peek_before_the_fork_server_starts_imports_nothing_heavy(tmp_path: Path) -> None:
    """``genesis run`` peeks at the study file before it starts the fork server: the server's start
    waits for that peek, so it reads the TOML without msgspec or numpy (each ~10 ms of imports)."""
    path = tmp_path / "study.toml"
    path.write_text("[execution]\nbackend = \"process\"\n")
    code = (
        "import sys\n"
        "from engine.optimize.fork_server import wants_process_backend\n"
        f"assert wants_process_backend({str(path)!r})\n"
        "print(sorted(m for m in ('msgspec', 'numpy', 'numba') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_study_read_from_a_pipe_runs(tmp_path: Path) -> None:
    """``genesis run <(cat study.toml) --headless``: the pipe gives its bytes once, so neither the early peek
    nor the loader may read it a second time (the run would find an empty file, or wait for ever)."""
    import threading

    fifo = tmp_path / "study.toml"
    os.mkfifo(fifo)
    text = (
        'name = "piped"\n[data]\nspec = "synthetic:bars=3000,seed=3,timeframe=1m"\n[strategy]\nname = "sma_cross"\n'
        '[space]\nfast = { int = [2, 6] }\nslow = { int = [10, 14], step = 2 }\n[search]\nsampler = "grid"\n'
        '[execution]\nbackend = "process"\nworkers = 2\n'
    )

    def write_once() -> None:
        with open(fifo, "w") as pipe:
            pipe.write(text)

    writer = threading.Thread(target=write_once, daemon=True)
    writer.start()
    command = [sys.executable, "-m", "genesis_tui.cli", "run", str(fifo), "--headless",
               "--db", str(tmp_path / "s.db"), "--report", str(tmp_path / "reports")]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "piped: complete, 15 trials (15 complete" in done.stdout + done.stderr
