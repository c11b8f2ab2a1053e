"""Headless mode for cron: budgeted resumable runs, reports, webhooks, recording and replay.

- :mod:`~engine.headless.runner`: ``run(RunOptions) -> exit code``, the cron runner (under the study's :mod:`~engine.optimize.lock`).
- :mod:`~engine.headless.output`: plain, quiet or JSON output and the rotating log file.
- :mod:`~engine.headless.notify`: the webhook (aiohttp, timeout, retries; never fails a run).
- :mod:`~engine.headless.report`: the report directory (Markdown, JSON, SVG charts) from the store.
- :mod:`~engine.headless.charts`: the SVG charts.
- :mod:`~engine.headless.recording`: telemetry recorded into the store, read back for replay.
- :mod:`~engine.headless.replay`: ``ReplaySource``, a telemetry source that plays a recording.

Submodules load on first use; importing the package costs nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "RunOptions": "engine.headless.runner",
    "run": "engine.headless.runner",
    "parse_duration": "engine.headless.runner",
    "Notifier": "engine.headless.notify",
    "NotifySettings": "engine.headless.notify",
    "Recorder": "engine.headless.recording",
    "Recording": "engine.headless.recording",
    "list_recordings": "engine.store.recordings",
    "ReplaySource": "engine.headless.replay",
    "write_run_report": "engine.headless.report",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.headless' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
