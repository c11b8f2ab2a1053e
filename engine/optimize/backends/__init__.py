"""Where trials run: ``inline`` (this process, a thread), ``process`` (a local worker pool)
and ``dask`` (a Dask cluster, local or remote); :func:`make_backend` picks one by name."""

from __future__ import annotations

from engine.optimize.backends.base import Backend, Chunk, ChunkDone, make_backend

__all__ = ["Backend", "Chunk", "ChunkDone", "make_backend"]
