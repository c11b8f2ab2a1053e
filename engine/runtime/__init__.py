"""The runtime: the ``Engine`` facade the console and the headless runner share."""

from __future__ import annotations

from engine.runtime._engine import *  # noqa: F403
from engine.runtime._engine import _figures  # noqa: F401
