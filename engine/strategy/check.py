"""The look-ahead and lookback check: does a strategy's signal at bar t depend only on bars up to t,
and only on the declared lookback's worth of them?

Signals are computed on the full history, then on histories cut short (at
many points, several near the end): a bar whose signal changes when later
bars are removed used the future. Then, at many bars t, on only the bars
``t - lookback .. t``: a signal that differs there needs more history than
declared, so the paper loop (which keeps only the lookback) would not match
the backtest. Comparisons are exact: a causal computation gives the same
bits on a prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from engine.strategy.core import StrategyDef

if TYPE_CHECKING:
    from engine.data import Bars

FindingKind = Literal["look-ahead", "lookback"]

#: Cut points and lookback windows tried: (normal, fast).
CUTS = (48, 12)
WINDOWS = (256, 48)
#: Cuts always tried this many bars before the end (plus the evenly spaced ones).
NEAR_END = (1, 2, 3, 5, 8, 13)


@dataclass(frozen=True, slots=True)
class Finding:
    """A bar whose signal changed: ``full`` with the whole history, ``other``
    with ``history`` bars (the first ``history`` bars for look-ahead; the
    ``history`` bars ending at ``bar`` for lookback)."""

    kind: FindingKind
    bar: int
    signal: Literal["entry", "exit"]
    full: bool
    other: bool
    history: int


@dataclass(frozen=True, slots=True)
class CheckReport:
    """What :func:`check` found (``findings`` sorted by bar, one per bar and kind)."""

    strategy: str
    params: Mapping[str, Any]
    bars: int
    lookback: int | None
    cuts: int
    windows: int
    findings: tuple[Finding, ...] = field(default=())

    @property
    def clean(self) -> bool:
        return not self.findings

    def first(self, kind: FindingKind | None = None) -> Finding | None:
        """The first finding of ``kind``; with none given, the first look-ahead
        (the graver fault, and the likely cause of lookback findings), else the first lookback one."""
        if kind is None:
            return self.first("look-ahead") or self.first("lookback")
        return next((f for f in self.findings if f.kind == kind), None)

    def count(self, kind: FindingKind) -> int:
        return sum(f.kind == kind for f in self.findings)

    def hint(self, finding: Finding) -> str:
        """One line: what changed and what to do about it."""
        full = f"{finding.signal}={finding.full}"
        other = f"{finding.signal}={finding.other}"
        if finding.kind == "look-ahead":
            return (
                f"look-ahead at bar {finding.bar}: {full} with later bars present but {other} without them "
                f"({finding.history} bars of history), so the signal reads later bars (np.roll(x, -k) or a negative shift, "
                "a centred window, or a statistic of the whole series such as x.max()); compute the value at "
                "bar t from bars up to t only"
            )
        return (
            f"lookback too short at bar {finding.bar}: {full} with the full history but {other} with only the "
            f"{finding.history} bars ending there (lookback {self.lookback}); declare a longer lookback "
            "(e.g. lookback=\"3*slow\") so the paper loop keeps enough history"
        )

    def to_dict(self) -> dict[str, Any]:
        first = self.first()
        return {
            "strategy": self.strategy,
            "params": dict(self.params),
            "bars": self.bars,
            "lookback": self.lookback,
            "cuts": self.cuts,
            "windows": self.windows,
            "clean": self.clean,
            "look_ahead_bars": [f.bar for f in self.findings if f.kind == "look-ahead"],
            "lookback_bars": [f.bar for f in self.findings if f.kind == "lookback"],
            "first": None if first is None else {"kind": first.kind, "bar": first.bar, "hint": self.hint(first)},
        }


def _spread(low: int, high: int, count: int) -> list[int]:
    """About ``count`` distinct integers spread over ``[low, high]``."""
    if high < low:
        return []
    return sorted({int(v) for v in np.linspace(low, high, num=max(count, 1)).round()})


def check(
    record: StrategyDef, bars: Bars, params: Mapping[str, Any] | None = None, *, fast: bool = False
) -> CheckReport:
    """Check ``record`` with ``params`` over ``bars`` for look-ahead and a too-short lookback.

    A failure of the strategy's own code raises its ``StrategyCodeError``.
    """
    values = record.validate(params)
    n = len(bars)
    lookback = record.lookback_bars(values) if record.lookback is not None else None
    entries, exits = record.signals(bars, values)
    found: dict[tuple[FindingKind, int], Finding] = {}

    def note(kind: FindingKind, bar: int, signal: Literal["entry", "exit"], full: bool, other: bool, history: int) -> None:
        found.setdefault((kind, bar), Finding(kind, bar, signal, full, other, history))

    # Look-ahead: prefixes of the history.
    shortest = max(2, min(n - 1, (lookback or 0) + 2))
    cuts = _spread(shortest, n - 1, CUTS[fast]) + [n - k for k in NEAR_END if n - k >= shortest]
    cuts = sorted(set(cuts))
    for cut in cuts:
        e, x = record.signals(bars.slice(0, cut), values)
        for signal, full, part in (("entry", entries[:cut], e), ("exit", exits[:cut], x)):
            for index in np.flatnonzero(full != part):
                note("look-ahead", int(index), signal, bool(full[index]), bool(part[index]), cut)  # type: ignore[arg-type]

    # Lookback: only the declared history before each sampled bar. The same
    # window with some later bars added tells look-ahead (which also breaks
    # the lookback test) from a lookback that is merely too short.
    windows: list[int] = []
    if lookback is not None and lookback + 1 < n:
        windows = sorted(set(_spread(lookback, n - 1, WINDOWS[fast]) + [n - k for k in NEAR_END if n - k > lookback]))
        extra = max(lookback, 64)
        for bar in windows:
            start = bar - lookback
            e, x = record.signals(bars.slice(start, bar + 1), values)
            if bar + 1 < n:
                longer_e, longer_x = record.signals(bars.slice(start, min(n, bar + 1 + extra)), values)
                for signal, own, longer in (("entry", e[-1], longer_e[lookback]), ("exit", x[-1], longer_x[lookback])):
                    if bool(own) != bool(longer):
                        note("look-ahead", bar, signal, bool(longer), bool(own), lookback + 1)  # type: ignore[arg-type]
            if ("look-ahead", bar) in found:
                continue
            for signal, full, part in (("entry", entries[bar], e[-1]), ("exit", exits[bar], x[-1])):
                if bool(full) != bool(part):
                    note("lookback", bar, signal, bool(full), bool(part), lookback + 1)  # type: ignore[arg-type]

    findings = tuple(sorted(found.values(), key=lambda f: (f.bar, f.kind)))
    return CheckReport(record.name, values, n, lookback, len(cuts), len(windows), findings)
