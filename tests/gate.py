"""A gate in a test's own strategy file: one trial waits until the test opens it, so a study cannot end first.

A test that interrupts a running study (a signal, a budget, a stop key) must not
lose the race to a study that finished before the interruption landed: a faster
kernel or an idle machine would make it pass for the wrong reason or fail. The
gated strategy is ``sma_cross`` written with ``ta`` (a user strategy file, run by
content on every backend); the trial with the held parameters marks that it is
in hand and waits until the gate file exists (or :data:`GIVE_UP_S` passed: longer
than any test's timeout, so that a failed test leaves no worker waiting forever).
Until the test opens the gate the study can store every other trial but cannot
complete; no engine code is mocked.

The gate's paths are written into the file itself (a fork server started before
the test would not see an environment variable; the variable of a ``slow=None``
gate only marks a ``genesis`` process the test starts). Trial keys hash the parameters
only, so a reference run of the same strategy through another gate (opened
before it starts) stores the same keys and objectives.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

STRATEGY = '''\
"""sma_cross, except that each trial in GATES or FROM waits at its gate until the test opens it."""

import os
import time

from engine.strategy import Param, strategy, ta

GATES = {gates!r}  # (fast, slow) -> (the file saying the trial waits, the file that lets it go on)
# (fast at least, an environment variable the process must have, held file, open file)
FROM = {ranges!r}


def _gate(fast, slow):
    if (fast, slow) in GATES:
        return GATES[(fast, slow)]
    for least, variable, held, opened in FROM:
        if fast >= least and os.environ.get(variable):
            return held, opened
    return None, None


@strategy(params=[Param.int("fast", 10, 2, 2000), Param.int("slow", 50, 5, 5000)], constraints=["fast < slow"],
          lookback="slow")
def gated_cross(bars, fast, slow):
    held, opened = _gate(fast, slow)
    if opened is not None and not os.path.exists(opened):
        with open(held, "a"):
            pass
        give_up = time.monotonic() + {give_up_s}  # a failed test's held worker must not wait forever
        while not os.path.exists(opened) and time.monotonic() < give_up:
            time.sleep(0.01)
    f, s = ta.sma(bars.close, fast), ta.sma(bars.close, slow)
    return ta.crossed_above(f, s), ta.crossed_below(f, s)
'''

GIVE_UP_S = 900

#: The ``[strategy]`` lines of a study file that runs the gated strategy written beside it.
STRATEGY_LINES = 'name = "gated_cross"\nfile = "gated.py"'


class Gate:
    """The gate of one test: ``write`` the strategy beside a study file, wait for ``held``, then ``open``.

    The held trial is the one with parameters ``fast`` and ``slow``: a grid's order says how
    many trials come before and after it. Not the strategy's defaults: a study's look-ahead
    check runs them (in the driver, or in the test's own process on the inline backend).
    With ``slow=None`` every trial from ``fast`` on waits, and only in a process whose
    environment has ``variable`` set (one of several drivers of a shared study, evaluating
    its trials itself: which driver claims which trial is not known in advance).
    """

    def __init__(self, directory: Path, *, fast: int, slow: int | None, name: str = "gate",
                 variable: str = "") -> None:
        assert slow is not None or variable, "a gate from a fast value on holds only a marked process"
        self.fast, self.slow, self.variable = int(fast), slow, variable
        self.held_path = directory / f"{name}.held"
        self.open_path = directory / f"{name}.open"

    @classmethod
    def at(cls, directory: Path, hold: Mapping[str, int], *, name: str = "gate") -> Gate:
        """The gate of the trial with the parameters ``hold`` (``{"fast": ..., "slow": ...}``)."""
        return cls(directory, fast=hold["fast"], slow=hold["slow"], name=name)

    def write(self, study_directory: Path, *others: Gate) -> Path:
        """The strategy file ``gated.py`` in ``study_directory`` (where :data:`STRATEGY_LINES` finds it),
        holding this gate's trial and those of ``others``."""
        every = (self, *others)
        gates = {(g.fast, int(g.slow)): (str(g.held_path), str(g.open_path)) for g in every if g.slow is not None}
        ranges = [(g.fast, g.variable, str(g.held_path), str(g.open_path)) for g in every if g.slow is None]
        path = study_directory / "gated.py"
        path.write_text(STRATEGY.format(gates=gates, ranges=ranges, give_up_s=GIVE_UP_S))
        return path

    def held(self) -> bool:
        """The held trial is in a worker's hands, waiting: the study cannot complete until :meth:`open`."""
        return self.held_path.exists()

    def open(self) -> None:
        self.open_path.touch()

    def open_when(self, condition: Callable[[], bool]) -> threading.Thread:
        """Open the gate from a thread once ``condition()`` holds (a test whose own loop then waits on the
        study, e.g. a console shutting down after an error, cannot open it itself)."""

        def watch() -> None:
            give_up = time.monotonic() + GIVE_UP_S
            while not condition() and time.monotonic() < give_up:
                time.sleep(0.01)
            self.open()

        thread = threading.Thread(target=watch, name="test-gate", daemon=True)
        thread.start()
        return thread
