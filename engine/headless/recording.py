"""Recording telemetry snapshots into the store, and reading them back.

A headless run records :class:`~engine.telemetry.Telemetry` snapshots at the
console's refresh rate (4 Hz), so that ``genesis replay`` can show the night's
run as if someone had watched it. Frames are compact:

- each frame is the snapshot as plain builtins (``msgspec.to_builtins``),
  packed with msgpack (floats stay exact, NaN and infinities survive) and
  zlib-compressed; never pickle;
- every ``keyframe_every`` frames (30 s) a keyframe holds the whole snapshot;
  the frames between hold only a delta against the previous frame: changed
  fields, sliding histories as "drop k from the front, append these", lists
  of equal length as "element i changed". Most frames of a quiet run are a
  few dozen bytes.

Frames live in two tables of the study store, written and read by
:mod:`engine.store.recordings` (this module only encodes and decodes them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from bisect import bisect_right
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from engine.errors import StoreError
from engine.store.recordings import (
    FrameRow,
    RecordingInfo,
    RecordingWriter,
    list_recordings,
    read_frames,
)

log = logging.getLogger("engine.headless.recording")

CODEC = "msgpack+zlib+delta/1"
RECORD_HZ = 4.0  # the console's default refresh rate (genesis_tui.app.DEFAULT_REFRESH_HZ)
KEYFRAME_EVERY = 120  # 30 s at 4 Hz: a seek decodes at most 119 deltas
FLUSH_INTERVAL_S = 2.0
MAX_SHIFT = 128  # sliding histories: the largest front drop looked for
MIN_MATCH = 6  # lists at least this long may be sent as runs of the previous one


_packer = msgspec.msgpack.Encoder()
_unpacker = msgspec.msgpack.Decoder()

# ----------------------------------------------------------------- deltas
_SAME = object()


def diff(old: Any, new: Any) -> Any:
    """A patch turning ``old`` into ``new`` (:data:`_SAME` when they are equal).

    Patches: a dict is structured (``~r`` replace, ``~s``/``~a`` shift and
    append, ``~e`` element changes, ``~m`` runs copied from the old list and
    new items, ``~d`` deleted keys, other keys patch the same key); anything
    else replaces the value.
    """
    if type(old) is type(new) and old == new:
        return _SAME
    if isinstance(old, dict) and isinstance(new, dict):
        patch: dict[str, Any] = {}
        for key, value in new.items():
            sub = diff(old[key], value) if key in old else ({"~r": value} if isinstance(value, dict) else value)
            if sub is not _SAME:
                patch[key] = sub
        gone = [key for key in old if key not in new]
        if gone:
            patch["~d"] = gone
        return patch
    if isinstance(old, list | tuple) and isinstance(new, list | tuple):  # to_builtins keeps tuples
        if old == new:
            return _SAME
        return _list_patch(old, new)
    if isinstance(new, dict):
        return {"~r": new}
    return new


def _list_patch(old: Sequence[Any], new: Sequence[Any]) -> Any:
    n_old, n_new = len(old), len(new)
    if n_old and n_new:
        # a sliding history: new == old[k:] + tail
        first = new[0]
        for k in range(min(n_old, MAX_SHIFT + 1)):
            if old[k] == first and n_new >= n_old - k and old[k:] == new[: n_old - k]:
                tail = list(new[n_old - k:])
                if len(tail) < n_new:
                    return {"~s": k, "~a": tail}
                break
        if n_old == n_new:
            changes = []
            for i, (a, b) in enumerate(zip(old, new, strict=True)):
                if not (type(a) is type(b) and a == b):
                    changes.append([i, diff(a, b)])
                    if 2 * len(changes) > n_new:
                        break
            else:
                return {"~e": changes}
        if n_old >= MIN_MATCH and n_new >= MIN_MATCH:
            return _matched(old, new)
    return list(new)


def _matched(old: Sequence[Any], new: Sequence[Any]) -> Any:
    """``new`` as runs copied from ``old`` and new items (a leaderboard where one row moved in)."""
    a = [_packer.encode(item) for item in old]
    b = [_packer.encode(item) for item in new]
    first: dict[bytes, int] = {}
    for i, item in enumerate(a):
        first.setdefault(item, i)
    # One pass, each new item looked up by its encoding (difflib's longest-match search cost
    # milliseconds a frame); a run may come from anywhere in the old list, so a moved row is copied.
    ops: list[Any] = []
    copied = j = end = 0
    n_old, n_new = len(a), len(b)
    while j < n_new:
        found = end if end < n_old and a[end] == b[j] else first.get(b[j])
        if found is None:
            if ops and ops[-1][0] == 1:
                ops[-1].append(new[j])
            else:
                ops.append([1, new[j]])  # these new items
            j += 1
            continue
        start = i = found
        while i < n_old and j < n_new and a[i] == b[j]:
            i += 1
            j += 1
        ops.append([0, start, i])  # copy old[start:i]
        copied += i - start
        end = i
    if 2 * copied < len(new):
        return list(new)
    return {"~m": ops}


def apply(old: Any, patch: Any) -> Any:
    """``old`` with ``patch`` applied (``old`` is not modified)."""
    if not isinstance(patch, dict):
        return patch
    if "~r" in patch:
        return patch["~r"]
    if "~s" in patch:
        return list(old[patch["~s"]:]) + list(patch["~a"])
    if "~m" in patch:
        out = []
        for op in patch["~m"]:
            if op[0] == 0:
                out.extend(old[op[1]:op[2]])
            else:
                out.extend(op[1:])
        return out
    if "~e" in patch:
        out = list(old)
        for index, sub in patch["~e"]:
            out[index] = apply(out[index], sub)
        return out
    merged = dict(old) if isinstance(old, dict) else {}
    for key, sub in patch.items():
        if key == "~d":
            for gone in sub:
                merged.pop(gone, None)
        else:
            merged[key] = apply(merged.get(key), sub)
    return merged


class FrameEncoder:
    """Turns successive snapshots into (keyframe?, compressed bytes)."""

    def __init__(self, keyframe_every: int = KEYFRAME_EVERY, level: int = 6) -> None:
        self.keyframe_every = max(1, keyframe_every)
        self.level = level
        self._previous: Any = None
        self._count = 0

    def encode(self, snapshot: Any) -> tuple[bool, bytes]:
        current = msgspec.to_builtins(snapshot)
        keyframe = self._previous is None or self._count % self.keyframe_every == 0
        if keyframe:
            body = current
        else:
            body = diff(self._previous, current)
            if body is _SAME:
                body = {}
        self._previous = current
        self._count += 1
        return keyframe, zlib.compress(_packer.encode(body), self.level)


def decode_body(blob: bytes) -> Any:
    return _unpacker.decode(zlib.decompress(blob))


# -------------------------------------------------------------- recorder
class Recorder:
    """Records ``source()`` every ``1/hz`` seconds into the store at ``db``.

    ``start()`` creates the recording, ``stop()`` takes a last frame and
    flushes. Writes go through one SQLite connection used from a worker thread
    (never on the event loop), batched every ``flush_interval_s``.
    """

    def __init__(
        self,
        db: str | Path,
        study: str,
        source: Callable[[], Any],
        *,
        hz: float = RECORD_HZ,
        run: str | None = None,
        keyframe_every: int = KEYFRAME_EVERY,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = Path(db)
        self.clock = clock
        self.study = study
        self.source = source
        self.hz = max(0.1, float(hz))
        self.run = run
        self.flush_interval_s = flush_interval_s
        self.encoder = FrameEncoder(keyframe_every)
        self.recording_id: int | None = None
        self.frames = 0
        self.bytes = 0
        self.errors = 0
        self._writer: RecordingWriter | None = None
        self._pending: list[FrameRow] = []
        self._t0 = 0.0
        self._task: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()

    async def start(self, *, timer: bool = True) -> Recorder:
        """Create the recording; with ``timer`` take a frame every ``1/hz`` s (else call :meth:`capture`)."""
        self._writer = await asyncio.to_thread(self._open)
        if timer:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"recorder-{self.study}")
        return self

    def _open(self) -> RecordingWriter:
        writer = RecordingWriter(self.db, study=self.study, run=self.run, hz=self.hz, codec=CODEC)
        self._t0 = self.clock()
        self.recording_id = writer.recording_id
        return writer

    def capture(self) -> None:
        """Take one frame now (the loop calls this; tests may too)."""
        assert self.recording_id is not None
        try:
            snapshot = self.source()
            keyframe, blob = self.encoder.encode(snapshot)
        except Exception as error:  # a bad snapshot must not stop the run
            self.errors += 1
            if self.errors <= 3:
                log.warning("recording: frame skipped: %s: %s", type(error).__name__, error)
            return
        self._pending.append((self.recording_id, self.frames, self.clock() - self._t0, int(keyframe), blob))
        self.frames += 1
        self.bytes += len(blob)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.hz
        next_at = loop.time()
        last_flush = loop.time()
        while True:
            self.capture()
            if loop.time() - last_flush >= self.flush_interval_s:
                last_flush = loop.time()
                await self.flush()
            next_at += period
            delay = next_at - loop.time()
            if delay < 0:  # fell behind (a busy loop): skip frames rather than burst
                next_at, delay = loop.time(), 0.0
            await asyncio.sleep(delay)

    async def flush(self) -> None:
        async with self._write_lock:
            rows, self._pending = self._pending, []
            if rows and self._writer is not None:
                try:
                    await asyncio.to_thread(self._write, rows)
                except StoreError as error:
                    self.errors += 1
                    log.warning("recording: %d frames not stored: %s", len(rows), error)

    def _write(self, rows: list[FrameRow]) -> None:
        assert self._writer is not None
        self._writer.write(rows, frames=self.frames, nbytes=self.bytes)

    async def stop(self, *, last_frame: bool = True) -> None:
        """A last frame (the final state), flush, close."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._writer is None:
            return
        if last_frame:
            self.capture()
        await self.flush()
        writer, self._writer = self._writer, None
        await asyncio.to_thread(writer.close)


# -------------------------------------------------------------- reading
class Recording:
    """A stored recording, decoded on demand: ``frame(i)`` is the i-th :class:`Telemetry`."""

    def __init__(self, info: RecordingInfo, times: list[float], keyframes: list[bool], blobs: list[bytes]) -> None:
        if not times:
            raise StoreError(f"recording {info.id} of study {info.study!r} holds no frames")
        self.info = info
        self.times = times
        self.keyframes = keyframes
        self._blobs = blobs
        self._cursor = -1
        self._state: Any = None
        self._cache: dict[int, Any] = {}

    @classmethod
    def load(cls, db: str | Path, study: str, recording_id: int | None = None) -> Recording:
        """The study's latest recording in ``db`` (or recording ``recording_id``)."""
        db = Path(db)
        infos = list_recordings(db, study)
        if not infos:
            others = sorted({r.study for r in list_recordings(db)})
            known = f"; recorded studies: {', '.join(others[:8])}" if others else "; the store holds no recordings"
            raise StoreError(f"{db}: no recording of study {study!r}{known}")
        if recording_id is None:
            info = infos[-1]
        else:
            matches = [r for r in infos if r.id == recording_id]
            if not matches:
                ids = ", ".join(str(r.id) for r in infos)
                raise StoreError(f"{db}: study {study!r} has no recording {recording_id} (recordings: {ids})")
            info = matches[0]
        return cls(info, *read_frames(db, info.id))

    def __len__(self) -> int:
        return len(self.times)

    @property
    def duration_s(self) -> float:
        return self.times[-1]

    def index_at(self, t: float) -> int:
        """The last frame taken at or before ``t`` seconds into the recording."""
        return max(0, bisect_right(self.times, t) - 1)

    def builtins(self, index: int) -> Any:
        """Frame ``index`` as plain builtins (decoded from its keyframe forward)."""
        index = max(0, min(index, len(self.times) - 1))
        if index == self._cursor:
            return self._state
        start = index
        if not (self._cursor >= 0 and self._cursor < index and not any(self.keyframes[self._cursor + 1 : index + 1])):
            while start > 0 and not self.keyframes[start]:
                start -= 1
            state = decode_body(self._blobs[start])
            position = start
        else:
            state, position = self._state, self._cursor
        for i in range(position + 1, index + 1):
            body = decode_body(self._blobs[i])
            state = body if self.keyframes[i] else apply(state, body)
        self._cursor, self._state = index, state
        return state

    def frame(self, index: int) -> Any:
        """Frame ``index`` as a :class:`~engine.telemetry.Telemetry`."""
        from engine.telemetry import Telemetry

        index = max(0, min(index, len(self.times) - 1))
        cached = self._cache.get(index)
        if cached is None:
            cached = msgspec.convert(self.builtins(index), Telemetry)
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[index] = cached
        return cached
