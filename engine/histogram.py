"""A fixed-memory log-bucketed histogram (HDR style) for latencies and timings.

Values are non-negative integers (nanoseconds, say). Values below 32 get a
bucket each; above that every power of two is split into 16 buckets, so a
reported percentile is within about 6% of the true value, whatever the range,
in 1,024 counters and no per-sample list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_SUB_BITS = 4
_SUB = 1 << _SUB_BITS  # buckets per power of two
_LINEAR = 2 * _SUB  # values below this get a bucket each
BUCKETS = 1024


def bucket_index(value: int) -> int:
    """The bucket that holds ``value`` (negative values count as 0)."""
    if value < _LINEAR:
        return value if value > 0 else 0
    shift = value.bit_length() - (_SUB_BITS + 1)
    return min((shift << _SUB_BITS) + (value >> shift), BUCKETS - 1)


def bucket_bounds(index: int) -> tuple[int, int]:
    """The inclusive value range ``(low, high)`` of bucket ``index``."""
    if index < _LINEAR:
        return index, index
    shift = (index >> _SUB_BITS) - 1
    mantissa = index - (shift << _SUB_BITS)
    return mantissa << shift, ((mantissa + 1) << shift) - 1


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """Summary of a histogram at one moment."""

    count: int
    total: int
    min: int
    max: int
    p50: float
    p95: float
    p99: float
    p999: float

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0


class LogHistogram:
    """Counts of values in log-spaced buckets, with exact count, sum, min and max."""

    __slots__ = ("_counts", "count", "max", "min", "total")

    def __init__(self) -> None:
        self._counts = [0] * BUCKETS
        self.count = 0
        self.total = 0
        self.min = 0
        self.max = 0

    def record(self, value: int) -> None:
        """Add one value."""
        if value < _LINEAR:
            index = value if value > 0 else 0
        else:
            shift = value.bit_length() - (_SUB_BITS + 1)
            index = min((shift << _SUB_BITS) + (value >> shift), BUCKETS - 1)
        self._counts[index] += 1
        if self.count == 0 or value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        self.count += 1
        self.total += value

    def record_many(self, values: Any) -> None:
        """Add integer ``values`` (a numpy array or a sequence): the same counts, sum, min and max as
        recording each in turn."""
        import numpy as np

        values = np.asarray(values, dtype=np.int64)
        if not values.size:
            return
        clipped = np.maximum(values, 0)
        # bit_length: frexp's exponent, one less where the float rounded up to a power of two (past 2**53)
        bits = np.frexp(clipped.astype(np.float64))[1].astype(np.int64)
        bits -= (clipped >> np.maximum(bits - 1, 0)) == 0
        shift = np.maximum(bits - (_SUB_BITS + 1), 0)
        index = np.where(clipped < _LINEAR, clipped, np.minimum((shift << _SUB_BITS) + (clipped >> shift), BUCKETS - 1))
        counts = self._counts
        for bucket, n in enumerate(np.bincount(index, minlength=BUCKETS).tolist()):
            if n:
                counts[bucket] += n
        low, high = int(values.min()), int(values.max())
        self.min = low if self.count == 0 else min(self.min, low)
        self.max = max(self.max, high)
        self.count += int(values.size)
        self.total += sum(values.tolist())

    def merge(self, other: LogHistogram) -> None:
        """Add all of ``other``'s values to this histogram."""
        if other.count == 0:
            return
        counts = self._counts
        for index, n in enumerate(other._counts):
            if n:
                counts[index] += n
        self.min = other.min if self.count == 0 else min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.count += other.count
        self.total += other.total

    def reset(self) -> None:
        """Forget every value."""
        self._counts = [0] * BUCKETS
        self.count = self.total = self.min = self.max = 0

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0..100): the midpoint of the bucket that holds it,
        clamped to the exact min and max."""
        if self.count == 0:
            return 0.0
        rank = max(1, -(-self.count * q // 100))  # ceil, at least the first value
        seen = 0
        for index, n in enumerate(self._counts):
            seen += n
            if seen >= rank:
                low, high = bucket_bounds(index)
                return float(min(max((low + high) / 2, self.min), self.max))
        return float(self.max)

    def snapshot(self) -> HistogramSnapshot:
        """An immutable summary (count, total, min, max, p50/p95/p99/p99.9)."""
        return HistogramSnapshot(
            count=self.count,
            total=self.total,
            min=self.min,
            max=self.max,
            p50=self.percentile(50),
            p95=self.percentile(95),
            p99=self.percentile(99),
            p999=self.percentile(99.9),
        )
