"""First write wins, in memory: the trial keys a study has committed, for a store without a unique key index.

A unique index over random 64-bit hashes costs one B-tree page written per
row once the study outgrows the page cache (10+ us a row at 400k rows, and
growing); appending rows in id order costs about 3 us, flat. So the SQLite
store keeps the keys it must refuse here instead: the canonical keys (16
lowercase hex digits, what :func:`engine.optimize.space.trial_key` gives) as
sorted ``int64`` runs, 8 bytes a trial, and any other key text in a set.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

_HEX_KEYS = re.compile("[0-9a-f]*")
_RATIO = 4
"""A run is merged into the one before it once it is a quarter of its size: the runs' sizes fall
geometrically, so a lookup searches O(log n) runs and a key is copied O(log n) times in all."""


def key_ints(keys: Sequence[str]) -> np.ndarray | None:
    """``keys`` as ``int64`` when every one is canonical (16 lowercase hex digits), else ``None``."""
    joined = "".join(keys)
    # (lengths summing to 16 per key are each 16 when none is longer)
    if len(joined) != 16 * len(keys) or max(map(len, keys), default=16) != 16 or not _HEX_KEYS.fullmatch(joined):
        return None
    return np.frombuffer(bytes.fromhex(joined), dtype=">u8").astype(np.uint64).view(np.int64)


class KnownKeys:
    """The committed keys of one study: :meth:`fresh` says which new rows to write, :meth:`add` records them."""

    __slots__ = ("_others", "_runs", "count")

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []  # each sorted; sizes falling (see ``_RATIO``)
        self._others: set[str] = set()
        self.count = 0

    def _contains(self, ints: np.ndarray) -> np.ndarray:
        found = np.zeros(len(ints), dtype=bool)
        for run in self._runs:
            at = np.searchsorted(run, ints).clip(max=len(run) - 1)
            found |= run[at] == ints
        return found

    def fresh(self, keys: Sequence[str]) -> list[bool]:
        """For each key: write it (not committed before, and its first occurrence in ``keys``)?"""
        ints = key_ints(keys)
        if ints is None:
            seen: set[str] = set()
            keep = []
            for key, known in zip(keys, self._known_texts(keys), strict=True):
                keep.append(not known and key not in seen)
                seen.add(key)
            return keep
        unique, first = np.unique(ints, return_index=True)  # sorted: the runs are searched in order
        mask = np.zeros(len(ints), dtype=bool)
        mask[first[~self._contains(unique)]] = True
        return mask.tolist()

    def _known_texts(self, keys: Iterable[str]) -> list[bool]:
        out = []
        for key in keys:
            ints = key_ints((key,))
            out.append(key in self._others if ints is None else bool(self._contains(ints)[0]))
        return out

    def add(self, keys: Sequence[str]) -> None:
        """Record committed keys (each new: filtered by :meth:`fresh`, or read from the store)."""
        if not keys:
            return
        ints = key_ints(keys)
        if ints is None:
            canonical = [key for key in keys if key_ints((key,)) is not None]
            self._others.update(key for key in keys if key_ints((key,)) is None)
            self.count += len(keys) - len(canonical)
            if not canonical:
                return
            ints = key_ints(canonical)
            assert ints is not None
        self.count += len(ints)
        runs = self._runs
        runs.append(np.sort(ints))
        while len(runs) > 1 and len(runs[-2]) < _RATIO * len(runs[-1]):
            # Two sorted runs side by side: the stable sort (timsort) merges them in linear time.
            last = runs.pop()
            runs[-1] = np.sort(np.concatenate((runs[-1], last)), kind="stable")
