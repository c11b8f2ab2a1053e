"""The memory forecast on synthetic resident-memory series."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.monitor.alerts import forecast_memory


def test_steady_growth_projects_the_time_to_critical(rng: np.random.Generator) -> None:
    t = np.arange(300, dtype=np.float64)  # one sample a second
    rss = 500.0 + 2.0 * t + rng.normal(0.0, 3.0, t.size)  # 2 MB/s with noise
    f = forecast_memory(t, rss, critical_mb=2048.0)
    assert f is not None and f.growing
    assert f.slope_mb_per_s == pytest.approx(2.0, rel=0.03)
    level = 500.0 + 2.0 * 299
    assert f.level_mb == pytest.approx(level, abs=5.0)
    assert f.seconds_to_critical == pytest.approx((2048.0 - level) / 2.0, rel=0.05)
    assert f.steadiness > 0.9 and f.points == 200  # thinned to max_points


def test_spikes_and_collections_do_not_move_a_robust_fit(rng: np.random.Generator) -> None:
    t = np.arange(120, dtype=np.float64)
    rss = 800.0 + 1.0 * t
    rss[::15] -= 60.0  # a garbage collection every 15 s
    rss[7] += 900.0  # one wild spike
    f = forecast_memory(t, rss, critical_mb=2048.0)
    assert f is not None and f.growing
    assert f.slope_mb_per_s == pytest.approx(1.0, rel=0.05)
    ols = np.polyfit(t, rss, 1)[0]
    assert abs(ols - 1.0) > abs(f.slope_mb_per_s - 1.0)  # least squares is pulled off


def test_flat_noise_and_shrinking_memory_are_not_growth(rng: np.random.Generator) -> None:
    t = np.arange(200, dtype=np.float64)
    flat = forecast_memory(t, 900.0 + rng.normal(0.0, 5.0, t.size), critical_mb=2048.0)
    assert flat is not None and not flat.growing and math.isinf(flat.seconds_to_critical)
    falling = forecast_memory(t, 1500.0 - 0.5 * t, critical_mb=2048.0)
    assert falling is not None and not falling.growing
    # A slope too small to matter over the window (under 1 MB in total) is not growth.
    creeping = forecast_memory(t, 900.0 + 0.001 * t, critical_mb=2048.0)
    assert creeping is not None and not creeping.growing


def test_too_few_points_and_already_critical() -> None:
    assert forecast_memory(np.arange(5.0), np.arange(5.0), 10.0) is None
    t = np.arange(50, dtype=np.float64)
    f = forecast_memory(t, 2000.0 + 10.0 * t, critical_mb=2048.0)
    assert f is not None and f.seconds_to_critical == 0.0
    nan = np.full(50, np.nan)
    assert forecast_memory(t, nan, 2048.0) is None
