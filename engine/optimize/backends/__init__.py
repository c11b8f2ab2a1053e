"""Where trials run: ``inline`` (this process, a thread), ``process`` (a local worker pool)
and ``dask`` (a Dask cluster, local or remote); :func:`make_backend` picks one by name.

The names below import :mod:`~engine.optimize.backends.base` (numpy and the engine) on first
use, so that a submodule imports only what it needs: the fork server's preload starts with the
collector off, before those imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.optimize.backends.base import Backend, Chunk, ChunkDone, make_backend

__all__ = ["Backend", "Chunk", "ChunkDone", "make_backend"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'engine.optimize.backends' has no attribute {name!r}")
    return getattr(importlib.import_module("engine.optimize.backends.base"), name)
