"""The synthetic source: determinism, bar consistency, and its statistics match its parameters."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.data import load, periods_per_year, timeframe_ns
from engine.data.bars import validate_columns
from engine.data.sources.synthetic import SyntheticParams, regime_multipliers, simulate
from engine.data.spec import parse_timestamp
from engine.errors import DataError

COLUMNS = ("ts", "open", "high", "low", "close", "volume")


def _digest(spec: str) -> str:
    bars = load(spec)
    digest = hashlib.sha256()
    for name in COLUMNS:
        digest.update(getattr(bars, name).tobytes())
    return digest.hexdigest()


def _log_returns(bars: object) -> np.ndarray:
    close = bars.close  # type: ignore[attr-defined]
    return np.diff(np.log(close))


def test_same_seed_same_bars_bit_for_bit() -> None:
    a = load("synthetic:bars=5000,seed=11,timeframe=5m")
    b = load("synthetic:bars=5000,seed=11,timeframe=5m")
    for name in COLUMNS:
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name


def test_same_seed_same_bars_in_a_fresh_process() -> None:
    spec = "synthetic:bars=20000,seed=5,timeframe=1h"
    code = (
        "import hashlib\nfrom engine.data import load\n"
        f"b = load({spec!r})\nd = hashlib.sha256()\n"
        f"for n in {COLUMNS!r}: d.update(getattr(b, n).tobytes())\n"
        "print(d.hexdigest())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == _digest(spec)


def test_different_seeds_differ() -> None:
    a = load("synthetic:bars=1000,seed=1")
    b = load("synthetic:bars=1000,seed=2")
    assert not np.array_equal(a.close, b.close)
    assert not np.array_equal(a.volume, b.volume)
    assert np.array_equal(a.ts, b.ts)


def test_shorter_series_is_a_prefix_of_a_longer_one() -> None:
    short = load("synthetic:bars=3000,seed=9,timeframe=1d")
    long = load("synthetic:bars=50000,seed=9,timeframe=1d")
    for name in COLUMNS:
        assert np.array_equal(getattr(short, name), getattr(long, name)[:3000]), name


def test_defaults_and_metadata() -> None:
    bars = load("synthetic:bars=10,seed=3")
    assert bars.symbol == "SYNTH"
    assert bars.timeframe == "1m"
    assert bars.ts[0] == parse_timestamp("2024-01-01T00:00:00Z")
    assert bars.open[0] == 100.0
    assert bars.meta["source"] == "synthetic"
    assert bars.meta["dropped_rows"] == 0
    custom = load("synthetic:bars=10,seed=3,symbol=BTCUSD,price=42000,start=2020-06-01T12:00:00,timeframe=4h")
    assert custom.symbol == "BTCUSD"
    assert custom.open[0] == 42000.0
    assert custom.ts[0] == parse_timestamp("2020-06-01T12:00:00Z")
    assert np.all(np.diff(custom.ts) == timeframe_ns("4h"))


TIMEFRAMES = ["1s", "1m", "5m", "15m", "1h", "4h", "1d", "1w", "1M"]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    bars=st.integers(1, 2000),
    timeframe=st.sampled_from(TIMEFRAMES),
    vol=st.floats(0.0, 1.5),
    jumps=st.floats(0.0, 50.0),
    jump_size=st.floats(0.0, 0.1),
    regimes=st.booleans(),
)
def test_bars_are_always_valid_and_consistent(
    seed: int, bars: int, timeframe: str, vol: float, jumps: float, jump_size: float, regimes: bool
) -> None:
    spec = (
        f"synthetic:bars={bars},seed={seed},timeframe={timeframe},vol={vol!r},start=1800-01-01,"
        f"jumps={jumps!r},jump_size={jump_size!r},regimes={str(regimes).lower()}"
    )
    b = load(spec)  # validation runs on construction
    assert len(b) == bars
    validate_columns(b.ts, b.open, b.high, b.low, b.close, b.volume)
    assert np.all(b.high >= np.maximum(b.open, b.close))
    assert np.all(b.low <= np.minimum(b.open, b.close))
    assert np.array_equal(b.open[1:], b.close[:-1])  # continuous: open is the previous close
    assert np.all(np.diff(b.ts) == timeframe_ns(timeframe))
    assert np.all(np.isfinite(b.volume)) and np.all(b.volume >= 0)


def _annual_vol(spec: str) -> float:
    bars = load(spec)
    return float(np.std(_log_returns(bars)) * np.sqrt(periods_per_year(bars.timeframe)))


@pytest.mark.parametrize(("timeframe", "vol"), [("1m", 0.8), ("1h", 0.5), ("1d", 0.2), ("1w", 0.3)])
def test_diffusion_vol_matches_the_request_on_any_timeframe(timeframe: str, vol: float) -> None:
    """Without regimes and jumps, the annualised std of log returns is ``vol`` (within 2%:
    a per-bar scaling off by any timeframe factor fails)."""
    realised = _annual_vol(
        f"synthetic:bars=20000,seed=4,timeframe={timeframe},vol={vol},jumps=0,regimes=false,start=1700-01-01"
    )
    assert realised == pytest.approx(vol, rel=0.02)


def test_regimes_keep_the_long_run_vol_and_switch() -> None:
    params = SyntheticParams(bars=400_000, seed=8, timeframe="1h", vol=0.6, jumps=0.0)
    path = simulate(params)
    realised = float(np.std(np.diff(np.log(path.close))) * np.sqrt(periods_per_year("1h")))
    assert realised == pytest.approx(0.6, rel=0.08)
    calm, stress, p_stress = regime_multipliers(params)
    assert (1 - p_stress) * calm**2 + p_stress * stress**2 == pytest.approx(1.0)
    # The stressed share of bars approaches its stationary probability, and stressed bars move more.
    assert path.regime.mean() == pytest.approx(p_stress, abs=0.05)
    r = np.diff(np.log(path.close))
    stressed = path.regime[1:] == 1
    assert np.std(r[stressed]) / np.std(r[~stressed]) == pytest.approx(stress / calm, rel=0.05)
    # Spells last days, not bars: far fewer switches than bars.
    switches = int(np.count_nonzero(np.diff(path.regime)))
    expected = 2 * len(path.regime) / ((params.calm_days + params.stress_days) * 24)
    assert switches == pytest.approx(expected, rel=0.2)


def test_jumps_add_their_variance_and_happen_at_the_requested_rate() -> None:
    params = SyntheticParams(bars=80_000, seed=2, timeframe="1d", vol=0.2, jumps=50.0, jump_size=0.05, regimes=False)
    path = simulate(params)
    years = params.bars / periods_per_year("1d")
    assert path.jump.sum() / years == pytest.approx(50.0, rel=0.05)
    realised = float(np.var(np.diff(np.log(path.close))) * periods_per_year("1d"))
    assert realised == pytest.approx(0.2**2 + 50.0 * 0.05**2, rel=0.06)


def test_zero_vol_grows_at_the_drift_exactly() -> None:
    bars = load("synthetic:bars=366,seed=1,timeframe=1d,vol=0,jumps=0,drift=0.1,regimes=false")
    years = np.arange(1, 367) / periods_per_year("1d")
    np.testing.assert_allclose(bars.close, 100.0 * np.exp(0.1 * years), rtol=1e-12)
    np.testing.assert_allclose(bars.high, np.maximum(bars.open, bars.close), rtol=1e-14)
    np.testing.assert_allclose(bars.low, np.minimum(bars.open, bars.close), rtol=1e-14)


def test_intrabar_ranges_match_brownian_motion() -> None:
    """The bar high is the running maximum of Brownian motion: E[ln(H/O)^2] = sigma^2 per bar,
    and likewise for the low."""
    vol, timeframe = 0.5, "1h"
    bars = load(f"synthetic:bars=200000,seed=6,timeframe={timeframe},vol={vol},jumps=0,regimes=false")
    sigma2 = vol**2 / periods_per_year(timeframe)
    assert np.mean(np.log(bars.high / bars.open) ** 2) == pytest.approx(sigma2, rel=0.03)
    assert np.mean(np.log(bars.low / bars.open) ** 2) == pytest.approx(sigma2, rel=0.03)


def test_volume_scales_with_the_bar_length() -> None:
    minute = load("synthetic:bars=20000,seed=3,timeframe=1m,regimes=false,jumps=0")
    hour = load("synthetic:bars=20000,seed=3,timeframe=1h,regimes=false,jumps=0")
    assert hour.volume.mean() / minute.volume.mean() == pytest.approx(60.0, rel=0.05)


def test_tiny_vol_with_jumps_keeps_volume_finite() -> None:
    """Found by hypothesis: a subnormal vol made the move in sigmas, and so the volume, infinite."""
    bars = load("synthetic:bars=50,seed=0,timeframe=1m,vol=2.2250738585e-313,jumps=20000,jump_size=0.0625,regimes=false")
    assert np.all(np.isfinite(bars.volume))


def test_prices_out_of_the_float_range_are_one_clear_error() -> None:
    with pytest.raises(DataError, match=r"the generated prices left the float range .*; lower vol, drift or bars"):
        load("synthetic:bars=3000,seed=5,timeframe=1w,start=1800-01-01,vol=3,jumps=500,jump_size=0.2")


def test_series_past_2262_is_an_error() -> None:
    with pytest.raises(DataError, match=r"data spec 'synthetic:bars=1000,.*': 1000 bars of 1M from 2250-01-01T00:00:00 run past 2262"):
        load("synthetic:bars=1000,seed=1,timeframe=1M,start=2250-01-01")


def test_spells_longer_than_int64_neither_crash_nor_hang() -> None:
    # In a child process: before the cap these options made np.repeat write past its buffer
    # (a segfault that took the whole test run with it) or looped for ever.
    specs = [
        "synthetic:bars=300,calm_days=1e18",
        "synthetic:bars=300,stress_days=1e300",
        "synthetic:bars=300,calm_days=1e300,stress_days=1e300",
        "synthetic:bars=300,timeframe=1s,calm_days=1e15",
        "synthetic:bars=300,trend=1,trend_days=1e300",
    ]
    code = "import sys\nfrom engine.data import load\nprint([len(load(s)) for s in sys.argv[1:]])"
    done = subprocess.run([sys.executable, "-c", code, *specs], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str([300] * len(specs))
