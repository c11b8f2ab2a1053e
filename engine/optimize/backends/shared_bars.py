"""The market data in shared memory for local workers, named so that an orphan is found and removed.

The parent copies the bars once into one block; each worker maps it (no copy).
A block is named ``genesis-<owner pid>-<random>`` and starts with a small
header holding its owner's start time. Python's resource tracker unlinks a
block when only its owner dies; when the whole process group dies (systemd
stopping a unit, the out-of-memory killer) the tracker dies with it and the
block stays in ``/dev/shm``. Every start therefore removes the ``genesis-*``
blocks whose owner is gone: no process with that pid, or one started at
another time (the pid was reused). Listing blocks needs ``/dev/shm`` (Linux);
elsewhere nothing is swept.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import struct
import weakref
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import numpy as np

PREFIX = "genesis-"
SHM_DIR = Path("/dev/shm")
_MAGIC = b"GENESIS1"
_HEADER = struct.Struct("<8sd")  # magic, the owner's start time (seconds since the epoch)
#: The columns start here (a multiple of 64: aligned for every dtype).
DATA_OFFSET = 64
_NAME = re.compile(rf"^{PREFIX}(\d+)-[0-9a-f]+$")

#: ``(block name, [(column, dtype, shape)], meta)``; a basket's 2-D columns are column-major.
Handle = tuple[str, list[tuple[str, str, tuple[int, ...]]], dict[str, Any]]

#: The blocks this process owns and has not released (for :func:`release_all`).
_LIVE: weakref.WeakSet[SharedBars] = weakref.WeakSet()


def _start_time(pid: int) -> float | None:
    """When process ``pid`` started (``None``: no such process, or a zombie)."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.create_time()
    except psutil.NoSuchProcess:
        return None


def _owner_alive(pid: int, started: float | None) -> bool:
    """Whether the block's owner still runs (a process with its pid and, when known, its start time)."""
    import psutil

    try:
        now = _start_time(pid)
    except psutil.Error:  # not ours to inspect: assume it lives
        return True
    if now is None:
        return False
    return started is None or abs(now - started) < 0.5


def _read_header(path: Path) -> float | None:
    """The owner's start time recorded in the block, or ``None`` when there is none."""
    with open(path, "rb") as file:
        head = file.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    magic, started = _HEADER.unpack(head)
    return started if magic == _MAGIC else None


def orphans(directory: Path = SHM_DIR) -> list[Path]:
    """The ``genesis-*`` blocks whose owner is gone.

    Blocks of live processes, of other users, and names that are not ours are left out.
    """
    found: list[Path] = []
    if not directory.is_dir():
        return found
    for path in directory.glob(f"{PREFIX}*"):
        match = _NAME.match(path.name)
        if match is None:
            continue
        try:
            started = _read_header(path)
        except OSError:
            continue  # gone already, or another user's
        if not _owner_alive(int(match.group(1)), started):
            found.append(path)
    return found


def sweep_orphans(directory: Path = SHM_DIR) -> list[str]:
    """Remove the blocks whose owner is gone (see :func:`orphans`); the names removed."""
    removed = []
    for path in orphans(directory):
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path.name)
    return removed


def _create(size: int) -> shared_memory.SharedMemory:
    while True:
        name = f"{PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        with contextlib.suppress(FileExistsError):
            return shared_memory.SharedMemory(name=name, create=True, size=size)


def _basket_columns(basket: Any) -> dict[str, np.ndarray]:
    """A basket's timeline, 2-D columns and every symbol's rows (concatenated) by name."""
    columns = {"ts": basket.ts}
    columns.update({name: getattr(basket, name) for name in ("open", "high", "low", "close", "volume")})
    columns["rows"] = np.concatenate(basket.rows).astype(np.int64)
    return columns


class SharedBars:
    """The bars' six columns (a basket's 2-D ones) in one shared-memory block, created by the parent,
    attached by workers."""

    def __init__(self, bars: Any) -> None:
        from engine.data.basket import Basket

        sweep_orphans()  # blocks of runs killed with their whole process group
        if isinstance(bars, Basket):
            columns = _basket_columns(bars)
            self.meta: dict[str, Any] = {
                "symbols": list(bars.symbols), "timeframe": bars.timeframe,
                "counts": [int(rows.shape[0]) for rows in bars.rows],
            }  # fmt: skip
        else:
            columns = bars.columns()
            # Funding rates (a few KB) travel in the handle: a worker's backtests settle them too.
            self.meta = {"symbol": bars.symbol, "timeframe": bars.timeframe, "funding": bars.meta.get("funding")}
        self.layout = [(name, array.dtype.str, tuple(array.shape)) for name, array in columns.items()]
        size = DATA_OFFSET + sum(array.nbytes for array in columns.values())
        self.block = _create(size)
        started = _start_time(os.getpid()) or 0.0
        buffer = self.block.buf
        assert buffer is not None  # a block just created is mapped
        _HEADER.pack_into(buffer, 0, _MAGIC, started)
        offset = DATA_OFFSET
        for array in columns.values():
            view = np.ndarray(array.shape, dtype=array.dtype, buffer=self.block.buf, offset=offset, order="F")
            view[:] = array
            offset += array.nbytes
        _LIVE.add(self)

    @property
    def name(self) -> str:
        return self.block.name

    def handle(self) -> Handle:
        """What a worker needs to attach (a few bytes, whatever the data size)."""
        return self.block.name, self.layout, self.meta

    def close(self) -> None:
        _LIVE.discard(self)
        with contextlib.suppress(Exception):
            self.block.close()
        with contextlib.suppress(Exception):
            self.block.unlink()


def release_all() -> None:
    """Unlink every block this process owns (before an exit that skips the normal clean-up)."""
    for shared in list(_LIVE):
        shared.close()


def attach_bars(handle: Handle) -> tuple[Any, Any]:
    """``(Bars or Basket over the shared block, the block)``: read-only views, no copy (a basket's
    symbols with missing bars get their own columns copied once)."""
    from engine.data.bars import Bars
    from engine.data.basket import Basket

    name, layout, meta = handle
    # Spawned workers share the parent's resource tracker, so attaching here registers
    # nothing new; the parent unlinks the block when the pool closes.
    block = shared_memory.SharedMemory(name=name)
    columns: dict[str, Any] = {}
    offset = DATA_OFFSET
    for column, dtype, shape in layout:
        view = np.ndarray(tuple(shape), dtype=np.dtype(dtype), buffer=block.buf, offset=offset, order="F")
        view.flags.writeable = False
        columns[column] = view
        offset += view.nbytes
    if "symbols" in meta:
        bounds = np.cumsum([0, *meta["counts"]])
        every = columns.pop("rows")
        rows = [every[bounds[k] : bounds[k + 1]] for k in range(len(meta["counts"]))]
        ts = columns.pop("ts")
        return Basket.from_columns(ts, columns, rows, meta["symbols"], meta["timeframe"]), block
    extra: dict[str, object] = {} if meta.get("funding") is None else {"funding": meta["funding"]}
    return Bars(**columns, symbol=meta["symbol"], timeframe=meta["timeframe"], meta=extra), block
