"""``genesis run`` ends without the interpreter's teardown, after every exit handler, with its exit code;
and starts the workers' fork server from a peek at its arguments, before the parser is built."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

#: A driver whose ``__main__`` holds an object that marks the interpreter's teardown (module
#: globals are freed then) and that registers an exit handler after the command line is imported.
DRIVER = """\
import atexit, os, sys

class _Teardown:
    def __del__(self, _open=os.open, _close=os.close, _flags=os.O_CREAT | os.O_WRONLY):
        _close(_open({marks!r} + "/teardown", _flags))

if __name__ == "__main__":
    marker = _Teardown()
    from genesis_tui.cli import main
    atexit.register(lambda: open({marks!r} + "/handler", "w").close())
    args = {args!r}
    if {whole_argv!r}:
        sys.argv = ["genesis", *args]
        main()
    else:
        sys.exit(main(args))
"""


def _run(tmp_path: Path, args: list[str], *, whole_argv: bool) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    marks = tmp_path / "marks"
    marks.mkdir()
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(marks=str(marks), args=args, whole_argv=whole_argv))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=False,
                          cwd=Path.cwd(), timeout=300)
    return done, {path.name for path in marks.iterdir()}


def _study_args(tmp_path: Path) -> list[str]:
    from tests.optimize.conftest import write_study

    path = write_study(tmp_path, backend="inline", sampler="random", trials=6, artifacts="top:1")
    return ["run", str(path), "--headless", "--db", str(tmp_path / "s.db"), "--report", str(tmp_path / "reports")]


def test_the_command_line_skips_the_teardown_after_every_exit_handler(tmp_path: Path) -> None:
    done, marks = _run(tmp_path, _study_args(tmp_path), whole_argv=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "complete, 6 trials" in done.stdout  # a piped stdout is flushed before the process ends
    assert marks == {"handler"}  # the later handler ran; the teardown did not
    assert list((tmp_path / "reports").rglob("report.md"))


def test_the_exit_code_of_bad_input_survives_the_quick_exit(tmp_path: Path) -> None:
    done, marks = _run(tmp_path, ["run", str(tmp_path / "absent.toml"), "--headless"], whole_argv=True)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "absent.toml" in done.stderr
    assert marks == {"handler"}


def test_a_caller_that_passes_argv_keeps_the_teardown(tmp_path: Path) -> None:
    """``main(argv)`` is the library's call (tests, wrappers): its process ends normally (this also
    shows the marker does see a teardown)."""
    done, marks = _run(tmp_path, _study_args(tmp_path), whole_argv=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert marks == {"handler", "teardown"}


@pytest.mark.parametrize(
    ("argv", "peeked"),
    [
        (["study.toml", "--headless"], ("study.toml", None)),
        (["--db", "s.db", "study.toml", "--backend", "inline"], ("study.toml", "inline")),
        (["--backend=dask", "study.toml"], ("study.toml", "dask")),
        (["study.toml", "--help"], None),
        (["--headless"], None),  # no study file: the parser says so
    ],
)
def test_run_peeks_at_its_arguments_for_the_early_fork_server(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], peeked: tuple[str, str | None] | None
) -> None:
    import engine.optimize.fork_server as fork_server
    from genesis_tui.commands.run import start_workers_early

    asked: list[tuple[str, str | None]] = []
    started: list[str | None] = []
    monkeypatch.setattr(fork_server, "wants_process_backend", lambda study, backend: asked.append((study, backend)) or True)
    monkeypatch.setattr(fork_server, "start_fork_server", lambda study_file=None: started.append(study_file))
    start_workers_early(argv)
    assert asked == ([] if peeked is None else [peeked])
    # The server is told the study, so that it loads that study's kernels.
    assert started == ([] if peeked is None else [peeked[0]])
