"""Alert rules on an injected clock: min duration, hysteresis, levels, delivery."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.monitor.alert_spec import AlertsSpec, Threshold
from engine.monitor.alerts import Alert, AlertRules, CounterRate, format_duration, ratio


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def rules(spec: AlertsSpec | None = None, published: list[Alert] | None = None) -> tuple[AlertRules, Clock]:
    clock = Clock()
    sink = published if published is not None else []
    engine = AlertRules(spec or AlertsSpec(), publish=sink.append, clock=clock, wall_clock=lambda: 1000.0 + clock.now)
    return engine, clock


def feed(engine: AlertRules, clock: Clock, series: list[tuple[float, float | None]], rule: str) -> list[Alert]:
    out: list[Alert] = []
    for t, value in series:
        clock.now = t
        out += engine.evaluate({rule: value})
    return out


def test_a_breach_shorter_than_min_duration_never_raises() -> None:
    engine, clock = rules(AlertsSpec(min_duration_s=2.0))
    # 1.9 s above the 1 GB warning, then back.
    assert feed(engine, clock, [(0.0, 1500.0), (1.0, 1500.0), (1.9, 1500.0), (2.5, 500.0), (5.0, 500.0)], "memory_mb") == []
    assert engine.active() == ()


def test_raise_after_min_duration_then_clear_after_min_duration() -> None:
    published: list[Alert] = []
    engine, clock = rules(AlertsSpec(min_duration_s=2.0), published)
    out = feed(engine, clock, [(0.0, 1500.0), (1.0, 1500.0), (2.0, 1500.0)], "memory_mb")
    assert [(a.rule, a.level, a.state) for a in out] == [("memory_mb", "warning", "raised")]
    raised = out[0]
    assert raised.value == 1500.0 and raised.threshold == 1024.0 and raised.direction == "above"
    assert raised.topic == "alerts.raised" and raised.key == "memory_mb.warning" and not raised.critical
    assert raised.ts == raised.raised_at == 1002.0
    assert engine.active() == (raised,) and engine.worst() == "warning"
    # Back to normal: clears only after it stayed normal for the min duration.
    assert feed(engine, clock, [(3.0, 500.0), (4.9, 500.0)], "memory_mb") == []
    (cleared,) = feed(engine, clock, [(5.0, 500.0)], "memory_mb")
    assert cleared.state == "cleared" and cleared.topic == "alerts.cleared"
    assert cleared.raised_at == raised.ts and cleared.ts == 1005.0
    assert engine.active() == () and engine.worst() is None
    assert published == [raised, cleared] == list(engine.history())


def test_hysteresis_keeps_a_hovering_value_from_flapping() -> None:
    engine, clock = rules(AlertsSpec(min_duration_s=0.0, hysteresis=0.1))
    # Warning at 1024 MB, clears only below 1024 - 102.4 = 921.6 MB.
    series = [(float(t), v) for t, v in enumerate([1030, 1000, 1030, 950, 1025, 930, 1100])]
    out = feed(engine, clock, series, "memory_mb")
    assert [a.state for a in out] == ["raised"]
    (cleared,) = feed(engine, clock, [(10.0, 921.0)], "memory_mb")
    assert cleared.state == "cleared"


def test_a_brief_dip_does_not_clear() -> None:
    engine, clock = rules(AlertsSpec(min_duration_s=2.0))
    feed(engine, clock, [(0.0, 1500.0), (2.0, 1500.0)], "memory_mb")
    # Normal for 1.5 s, breached again, normal for 1.5 s: still raised.
    out = feed(engine, clock, [(3.0, 100.0), (4.5, 100.0), (4.6, 1500.0), (5.0, 100.0), (6.5, 100.0)], "memory_mb")
    assert out == []
    assert len(engine.active()) == 1


def test_critical_raises_on_top_of_warning() -> None:
    engine, clock = rules(AlertsSpec(min_duration_s=0.0))
    out = feed(engine, clock, [(0.0, 3000.0)], "memory_mb")
    assert [(a.level, a.state) for a in out] == [("warning", "raised"), ("critical", "raised")]
    assert engine.worst() == "critical" and engine.active()[0].critical
    assert engine.critical_raised == 1
    # Down to between the levels (and past critical's hysteresis): critical clears, warning stays.
    out = feed(engine, clock, [(1.0, 1500.0)], "memory_mb")
    assert [(a.level, a.state) for a in out] == [("critical", "cleared")]
    assert engine.worst() == "warning"


def test_below_rules_event_rate_and_disk() -> None:
    engine, clock = rules(AlertsSpec(min_duration_s=1.0))
    out = feed(engine, clock, [(0.0, 400.0), (1.0, 90.0), (2.0, 90.0)], "event_rate")
    assert [(a.level, a.state) for a in out] == [("warning", "raised"), ("critical", "raised")]
    assert out[1].message == "event rate 90 events/s below critical threshold 100 events/s"
    # The loop stops: event rate is no longer measured, its alerts clear at once.
    out = feed(engine, clock, [(3.0, None)], "event_rate")
    assert {(a.level, a.state) for a in out} == {("warning", "cleared"), ("critical", "cleared")}
    assert "no longer measured" in out[0].message
    out = feed(engine, clock, [(4.0, 200.0), (5.0, 200.0)], "disk_free_mb")
    assert [(a.level, a.state, a.direction) for a in out] == [("warning", "raised", "below"), ("critical", "raised", "below")]
    assert out[1].message == "free disk for the store 200 MB below critical threshold 256 MB"


def test_rates_and_disabled_levels() -> None:
    spec = AlertsSpec(
        min_duration_s=0.0,
        error_rate=Threshold(warning=0.01, critical=None),
        queue_drops=Threshold(enabled=False),
    )
    engine, _clock = rules(spec)
    out = engine.evaluate({"error_rate": 0.5, "queue_drops": 1e9, "unknown_metric": 1.0})
    assert [(a.rule, a.level) for a in out] == [("error_rate", "warning")]
    assert out[0].message == "error rate 50.00% above warning threshold 1.00%"
    assert engine.evaluate({"trial_failure_rate": 0.3}, now=1.0)[-1].level == "critical"


def test_a_missing_rule_is_left_alone() -> None:
    engine, clock = rules(AlertsSpec(min_duration_s=0.0))
    feed(engine, clock, [(0.0, 700.0)], "bus_p99_ms")
    assert len(engine.active()) == 2
    assert engine.evaluate({"memory_mb": 10.0}, now=1.0) == []
    assert len(engine.active()) == 2


@settings(max_examples=80, deadline=None)
@given(
    values=st.lists(st.floats(min_value=0.0, max_value=3000.0), min_size=1, max_size=60),
    steps=st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=60, max_size=60),
    min_duration=st.sampled_from([0.0, 1.0, 2.5]),
)
def test_raises_and_clears_alternate_and_need_a_breach(
    values: list[float], steps: list[float], min_duration: float
) -> None:
    engine, clock = rules(AlertsSpec(min_duration_s=min_duration))
    t = 0.0
    history: list[tuple[float, float]] = []
    states: dict[str, str] = {}
    for value, step in zip(values, steps, strict=False):
        t += step
        history.append((t, value))
        clock.now = t
        for alert in engine.evaluate({"memory_mb": value}):
            assert states.get(alert.key, "cleared") != alert.state  # strictly alternating
            states[alert.key] = alert.state
            limit = alert.threshold
            if alert.state == "raised":
                # The readings since the breach began all breached, and it began
                # at least min_duration ago.
                run = 0
                while run < len(history) and history[-1 - run][1] > limit:
                    run += 1
                assert run >= 1
                assert t - history[-run][0] >= min_duration
            else:
                assert value < limit * 0.9
    assert {a.key for a in engine.active()} == {k for k, s in states.items() if s == "raised"}


def test_counter_rate_and_ratio() -> None:
    rate = CounterRate(window_s=10.0, per_s=60.0)
    assert rate.update(0, now=0.0) is None
    assert rate.update(5, now=1.0) == 300.0  # 5 drops in 1 s = 300 / min
    for t in range(2, 30):
        last = rate.update(5 + 2 * (t - 1), now=float(t))
    assert last == 120.0  # 2 per second over the window
    assert rate.update(0, now=31.0) is None  # counter reset
    assert ratio(1, 0) is None and ratio(1, 4) == 0.25


def test_format_duration() -> None:
    assert [format_duration(s) for s in (5, 125, 3 * 3600 + 300, float("inf"))] == ["5s", "2m 05s", "3h 05m", "never"]
