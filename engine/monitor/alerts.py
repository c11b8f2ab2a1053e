"""Alert rules: warning and critical thresholds with hysteresis and a minimum duration.

Every rule of :class:`~engine.monitor.alert_spec.AlertsSpec` is two independent
two-state machines, one per level. A level *raises* once the measured value
has been past its threshold for ``min_duration_s``, and *clears* once the value
has been back inside the threshold by the ``hysteresis`` margin (10% of the
threshold by default) for ``min_duration_s`` too, so a value hovering at the
threshold never flaps. A critical breach therefore shows two active alerts,
warning and critical; :meth:`AlertRules.active` lists both, worst first.

Each raise and clear is an immutable :class:`Alert` handed to ``publish`` (the
console wires it to the bus topic :attr:`Alert.topic`, critical ones on the
CRITICAL lane) and kept in a bounded history. Time comes from an injectable
clock, so tests drive the rules without sleeping.

The memory forecast (:func:`forecast_memory`) fits a robust line (Theil–Sen)
through the resident-memory ring buffer; when memory grows steadily the rule
``memory_forecast`` warns with the projected time to the critical level.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np

from engine.config import config_path, decode, load_toml
from engine.errors import ConfigError
from engine.monitor.alert_spec import RULE_DIRECTION, AlertsSpec, Threshold

Level = Literal["warning", "critical"]
State = Literal["raised", "cleared"]
LEVELS: tuple[Level, Level] = ("warning", "critical")

#: The forecast rule's name (a warning only; its value is seconds to the critical memory level).
FORECAST_RULE = "memory_forecast"

#: How each rule's value reads in a message.
_UNITS = {
    "event_rate": ("{:,.0f}", " events/s"),
    "bus_p99_ms": ("{:,.1f}", " ms"),
    "memory_mb": ("{:,.0f}", " MB"),
    "error_rate": ("{:.2%}", ""),
    "trial_failure_rate": ("{:.2%}", ""),
    "queue_drops": ("{:,.0f}", " drops/min"),
    "disk_free_mb": ("{:,.0f}", " MB"),
}
_TITLES = {
    "event_rate": "event rate",
    "bus_p99_ms": "bus p99 latency",
    "memory_mb": "resident memory",
    "error_rate": "error rate",
    "trial_failure_rate": "trial failure rate",
    "queue_drops": "queue drops",
    "disk_free_mb": "free disk for the store",
    FORECAST_RULE: "memory forecast",
}


def format_value(rule: str, value: float | None) -> str:
    """``value`` with the rule's unit (``1,234 MB``, ``2.50%``, ``12m 30s``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if rule == FORECAST_RULE:
        return format_duration(value)
    pattern, unit = _UNITS.get(rule, ("{:g}", ""))
    return pattern.format(value) + unit


def format_duration(seconds: float) -> str:
    """``3h 05m``, ``12m 30s`` or ``45s``."""
    if math.isinf(seconds):
        return "never"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


@dataclass(frozen=True, slots=True)
class Alert:
    """One raise or clear of one rule at one level."""

    rule: str
    level: Level
    state: State
    value: float | None
    threshold: float
    direction: Literal["above", "below"]
    message: str
    ts: float  # wall clock (time.time()) of this raise or clear
    raised_at: float  # wall clock of the raise this record belongs to

    @property
    def key(self) -> str:
        """``rule.level``: the identity shared by a raise and its clear."""
        return f"{self.rule}.{self.level}"

    @property
    def topic(self) -> str:
        """The bus topic: ``alerts.raised`` or ``alerts.cleared``."""
        return f"alerts.{self.state}"

    @property
    def critical(self) -> bool:
        return self.level == "critical"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "level": self.level,
            "state": self.state,
            "value": self.value,
            "threshold": self.threshold,
            "direction": self.direction,
            "message": self.message,
            "ts": self.ts,
            "raised_at": self.raised_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        value = data.get("value")
        return cls(
            rule=str(data["rule"]),
            level=data["level"],
            state=data["state"],
            value=None if value is None else float(value),
            threshold=float(data["threshold"]),
            direction=data["direction"],
            message=str(data["message"]),
            ts=float(data["ts"]),
            raised_at=float(data["raised_at"]),
        )


class _LevelState:
    __slots__ = ("pending_since", "raised")

    def __init__(self) -> None:
        self.raised: Alert | None = None  # the raise while active
        self.pending_since: float | None = None  # when the value started asking for a change


class AlertRules:
    """Evaluates measured values against an :class:`AlertsSpec`.

    ``evaluate({"memory_mb": 1500.0, "event_rate": None, ...})``: a rule whose
    value is missing is skipped; ``None`` or NaN means "not measured now" (the
    event rate while no loop runs) and clears that rule's active alerts at once.
    """

    def __init__(
        self,
        spec: AlertsSpec | None = None,
        *,
        publish: Callable[[Alert], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        history: int = 500,
    ) -> None:
        self.spec = spec if spec is not None else AlertsSpec()
        self.publish = publish
        self.clock = clock
        self.wall_clock = wall_clock
        self._states: dict[tuple[str, Level], _LevelState] = {}
        self._history: deque[Alert] = deque(maxlen=history)
        self.critical_raised = 0  # how many critical raises so far (exit code 3)

    def rules(self) -> dict[str, tuple[Threshold, Literal["above", "below"]]]:
        """Every enabled rule: its thresholds and direction."""
        rules: dict[str, tuple[Threshold, Literal["above", "below"]]] = {}
        for name, direction in RULE_DIRECTION.items():
            threshold: Threshold = getattr(self.spec, name)
            if threshold.enabled:
                rules[name] = (threshold, direction)
        if self.spec.memory_forecast and self.spec.memory_mb.critical is not None:
            rules[FORECAST_RULE] = (Threshold(warning=self.spec.memory_forecast_horizon_s), "below")
        return rules

    def evaluate(self, values: Mapping[str, float | None], now: float | None = None) -> list[Alert]:
        """Feed one measurement per rule; return (and publish) the raises and clears."""
        now = self.clock() if now is None else now
        emitted: list[Alert] = []
        for rule, (threshold, direction) in self.rules().items():
            if rule not in values:
                continue
            value = values[rule]
            if value is not None and math.isnan(value):
                value = None
            for level in LEVELS:
                limit = getattr(threshold, level)
                if limit is None:
                    continue
                alert = self._step(rule, level, float(limit), direction, value, now)
                if alert is not None:
                    emitted.append(alert)
        for alert in emitted:
            self._history.append(alert)
            if alert.critical and alert.state == "raised":
                self.critical_raised += 1
            if self.publish is not None:
                self.publish(alert)
        return emitted

    def _step(
        self, rule: str, level: Level, limit: float, direction: Literal["above", "below"], value: float | None, now: float
    ) -> Alert | None:
        state = self._states.setdefault((rule, level), _LevelState())
        if value is None:
            state.pending_since = None
            if state.raised is not None:
                return self._clear(state, value, "no longer measured")
            return None
        margin = self.spec.hysteresis * abs(limit)
        if direction == "above":
            breached, back = value > limit, value < limit - margin
        else:
            breached, back = value < limit, value > limit + margin
        wants_change = back if state.raised is not None else breached
        if not wants_change:
            state.pending_since = None
            return None
        if state.pending_since is None:
            state.pending_since = now
        if now - state.pending_since < self.spec.min_duration_s:
            return None
        state.pending_since = None
        if state.raised is not None:
            return self._clear(state, value, "back to normal")
        ts = self.wall_clock()
        alert = Alert(
            rule=rule,
            level=level,
            state="raised",
            value=value,
            threshold=limit,
            direction=direction,
            message=self._message(rule, level, value, limit, direction),
            ts=ts,
            raised_at=ts,
        )
        state.raised = alert
        return alert

    def _clear(self, state: _LevelState, value: float | None, why: str) -> Alert:
        raised = state.raised
        assert raised is not None
        state.raised = None
        title = _TITLES.get(raised.rule, raised.rule)
        return Alert(
            rule=raised.rule,
            level=raised.level,
            state="cleared",
            value=value,
            threshold=raised.threshold,
            direction=raised.direction,
            message=f"{title} {why} ({format_value(raised.rule, value)}); {raised.level} cleared",
            ts=self.wall_clock(),
            raised_at=raised.raised_at,
        )

    @staticmethod
    def _message(rule: str, level: Level, value: float, limit: float, direction: str) -> str:
        if rule == FORECAST_RULE:
            return f"resident memory growing steadily: critical level in about {format_duration(value)}"
        title = _TITLES.get(rule, rule)
        return f"{title} {format_value(rule, value)} {direction} {level} threshold {format_value(rule, limit)}"

    def active(self) -> tuple[Alert, ...]:
        """The raises not yet cleared, critical first, then oldest first."""
        raised = [s.raised for s in self._states.values() if s.raised is not None]
        return tuple(sorted(raised, key=lambda a: (a.level != "critical", a.raised_at)))

    def history(self, limit: int | None = None) -> tuple[Alert, ...]:
        """Recent raises and clears, oldest first."""
        items = tuple(self._history)
        return items if limit is None else items[-limit:]

    def worst(self) -> Level | None:
        """The highest active level, or None when all is well."""
        active = self.active()
        return active[0].level if active else None


# --- rates from cumulative counters --------------------------------------------


class CounterRate:
    """Turns a cumulative counter (events, drops, errors) into a rate over a sliding window."""

    def __init__(self, window_s: float = 10.0, per_s: float = 1.0) -> None:
        self.window_s = window_s
        self.per_s = per_s  # 60.0 gives a per-minute rate
        self._points: deque[tuple[float, float]] = deque()

    def update(self, total: float, now: float) -> float | None:
        """Add a reading of the counter; the rate over the window, or None before two readings."""
        points = self._points
        if points and total < points[-1][1]:  # the counter was reset
            points.clear()
        points.append((now, total))
        while len(points) > 2 and now - points[1][0] >= self.window_s:
            points.popleft()
        if len(points) < 2 or now <= points[0][0]:
            return None
        t0, v0 = points[0]
        return (total - v0) / (now - t0) * self.per_s


def ratio(part: float, whole: float) -> float | None:
    """``part / whole``, or None when there is nothing to divide by (no events yet)."""
    return part / whole if whole > 0 else None


# --- the memory forecast ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemoryForecast:
    """A robust linear fit through recent resident memory."""

    slope_mb_per_s: float
    level_mb: float  # the fit at the latest sample
    critical_mb: float
    seconds_to_critical: float  # inf when not growing
    steadiness: float  # share of sample pairs that rose (1.0: every later sample is higher)
    points: int
    growing: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "slope_mb_per_s": self.slope_mb_per_s,
            "level_mb": self.level_mb,
            "critical_mb": self.critical_mb,
            "seconds_to_critical": None if math.isinf(self.seconds_to_critical) else self.seconds_to_critical,
            "steadiness": self.steadiness,
            "points": self.points,
            "growing": self.growing,
        }


def forecast_memory(
    ts: np.ndarray,
    rss_mb: np.ndarray,
    critical_mb: float,
    *,
    min_points: int = 10,
    min_steadiness: float = 0.75,
    min_growth_mb: float = 1.0,
    max_points: int = 200,
) -> MemoryForecast | None:
    """Project when resident memory reaches ``critical_mb``; None with too few samples.

    The slope is Theil–Sen's (the median of all pairwise slopes), so spikes and
    a garbage collection or two don't move it. Growth is *steady* when at
    least ``min_steadiness`` of all sample pairs rose and the fitted line grew
    by ``min_growth_mb`` over the window; only then is the time to critical
    finite.
    """
    t = np.asarray(ts, dtype=np.float64)
    y = np.asarray(rss_mb, dtype=np.float64)
    keep = ~(np.isnan(t) | np.isnan(y))
    t, y = t[keep], y[keep]
    if t.size < min_points:
        return None
    if t.size > max_points:  # O(n^2) pairs: thin evenly, keep the latest
        index = np.linspace(0, t.size - 1, max_points).round().astype(np.int64)
        t, y = t[index], y[index]
    i, j = np.triu_indices(t.size, k=1)
    dt = t[j] - t[i]
    valid = dt > 0
    if not valid.any():
        return None
    dy = y[j][valid] - y[i][valid]
    slopes = dy / dt[valid]
    slope = float(np.median(slopes))
    intercept = float(np.median(y - slope * t))
    level = slope * float(t[-1]) + intercept
    steadiness = float(np.mean(dy > 0))
    span = float(t.max() - t.min())
    growing = slope > 0 and steadiness >= min_steadiness and slope * span >= min_growth_mb
    if not growing:
        seconds = math.inf
    elif level >= critical_mb:
        seconds = 0.0
    else:
        seconds = (critical_mb - level) / slope
    return MemoryForecast(slope, level, critical_mb, seconds, steadiness, int(t.size), growing)


# --- where the thresholds come from ---------------------------------------------


def merge_specs(base: AlertsSpec, override: AlertsSpec) -> AlertsSpec:
    """``override``'s settings where they differ from the defaults, ``base``'s elsewhere.

    For a study's already-decoded ``[alerts]`` over the global config: a study
    setting equal to the default cannot be told from an unset one, so it leaves
    the global value in place (pass the raw table to :func:`resolve_alerts` to
    avoid that).
    """
    defaults = AlertsSpec()
    changes: dict[str, Any] = {}
    for name in AlertsSpec.__struct_fields__:
        mine, default = getattr(override, name), getattr(defaults, name)
        if isinstance(mine, Threshold):
            theirs = getattr(base, name)
            parts = {
                part: getattr(mine, part) if getattr(mine, part) != getattr(default, part) else getattr(theirs, part)
                for part in Threshold.__struct_fields__
            }
            changes[name] = Threshold(**parts)
        elif mine != default:
            changes[name] = mine
    return msgspec.structs.replace(base, **changes)


def global_alerts_table(path: Path | None = None) -> dict[str, Any]:
    """The raw ``[alerts]`` table of the global config file ({} when there is none)."""
    path = path if path is not None else config_path()
    if not path.exists():
        return {}
    table = load_toml(path).get("alerts", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: alerts: expected a table, got {type(table).__name__}")
    return table


def resolve_alerts(
    study: Mapping[str, Any] | AlertsSpec | None = None, *, study_where: str = "study.toml"
) -> AlertsSpec:
    """The thresholds in effect: defaults, then the global config, then the study's ``[alerts]``.

    ``study`` is the study file's raw ``[alerts]`` table (merged key by key,
    down to a threshold's ``warning``/``critical``) or its decoded spec (see
    :func:`merge_specs`). Bad values raise a one-line ``ConfigError`` naming
    the file and key, such as ``study.toml: alerts.memory_mb.warning: ...``.
    """
    path = config_path()
    raw_global = global_alerts_table(path)
    base = _decode_alerts(raw_global, str(path))
    if study is None:
        return base
    if isinstance(study, AlertsSpec):
        return merge_specs(base, study)
    _decode_alerts(dict(study), study_where)  # name the study file in its own errors
    merged = {**raw_global}
    for key, value in study.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return _decode_alerts(merged, study_where)


class _AlertsTable(msgspec.Struct, frozen=True):
    alerts: AlertsSpec = AlertsSpec()


def _decode_alerts(raw: Mapping[str, Any], where: str) -> AlertsSpec:
    return decode({"alerts": dict(raw)}, _AlertsTable, where).alerts
