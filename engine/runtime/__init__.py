"""The runtime: the ``Engine`` facade the console and the headless runner share, and its parts.

- :mod:`~engine.runtime._engine`: :class:`Engine`, owns a workspace's study, bus, paper
  loop, profiler and monitor and freezes them into :class:`~engine.telemetry.Telemetry`.
- :mod:`~engine.runtime._watch`: :class:`StudyWatch`, a running study's store read
  incrementally (leaderboard, convergence, heatmap, best equity).
- :mod:`~engine.runtime._paper`: :class:`PaperHost`, the paper-trading loop on the bus.
- :mod:`~engine.runtime._paper_study`: the paper loop (one symbol or a basket) a study file describes.
- :mod:`~engine.runtime._thread`: :class:`EngineThread`, an engine on its own event loop
  in its own thread (the console's), handing over snapshots and taking commands.
- :mod:`~engine.runtime._log`: :class:`LogBuffer`, the last ``engine`` log records.

The mapping of each part's records onto the console's lives in
:mod:`engine.telemetry_map`. Layer: the runtime imports ``optimize``, ``live`` and
below, never ``engine.headless`` (which imports it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from engine.runtime._engine import WORKER_NICE, Engine
from engine.runtime._log import LogBuffer
from engine.runtime._thread import SWITCH_INTERVAL_S, EngineStopped, EngineThread, engine_threads
from engine.runtime._watch import StudyWatch

if TYPE_CHECKING:
    from engine.runtime._paper import PaperHost
    from engine.runtime._paper_study import StudyPaper, paper_factory_for, study_paper

# The paper loop (≈15 ms of imports) is loaded on first use: a headless study never trades.
_LAZY = {
    "PaperHost": "engine.runtime._paper",
    "StudyPaper": "engine.runtime._paper_study",
    "paper_factory_for": "engine.runtime._paper_study",
    "study_paper": "engine.runtime._paper_study",
}

__all__ = [
    "SWITCH_INTERVAL_S",
    "WORKER_NICE",
    "Engine",
    "EngineStopped",
    "EngineThread",
    "LogBuffer",
    "PaperHost",
    "StudyPaper",
    "StudyWatch",
    "engine_threads",
    "paper_factory_for",
    "study_paper",
]


def __getattr__(name: str) -> Any:
    """Import the paper loop's names on first access."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
