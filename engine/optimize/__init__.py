"""Parameter studies: spaces, samplers, the executor and its backends, the store.

``Study`` is the entry point: ``Study.from_file("study.toml", db=...)`` then
``await study.run()``. Heavy parts are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "SqliteStore",
    "Study",
    "StudyProgress",
    "StudyRecord",
    "StudyState",
    "StudySummary",
    "TrialRecord",
    "TrialState",
    "load_study",
]

_LAZY = {
    "Study": ("engine.optimize.study", "Study"),
    "StudySummary": ("engine.optimize.study", "StudySummary"),
    "StudyProgress": ("engine.optimize.progress", "StudyProgress"),
    "StudyRecord": ("engine.store.records", "StudyRecord"),
    "StudyState": ("engine.store.records", "StudyState"),
    "load_study": ("engine.optimize.spec", "load_study"),
    "SqliteStore": ("engine.store.study_sqlite", "SqliteStore"),
    "TrialRecord": ("engine.store.records", "TrialRecord"),
    "TrialState": ("engine.store.records", "TrialState"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module_name, attribute = _LAZY[name]
        return getattr(importlib.import_module(module_name), attribute)
    raise AttributeError(f"module 'engine.optimize' has no attribute {name!r}")
