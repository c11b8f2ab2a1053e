"""Where trials run: ``inline`` (this process, a thread) and ``process`` (a worker pool)."""

from __future__ import annotations

from engine.optimize.backends.base import Backend, Chunk, ChunkDone, make_backend

__all__ = ["Backend", "Chunk", "ChunkDone", "make_backend"]
