"""``synthetic:`` bars: seeded geometric Brownian motion with volatility regimes and jumps.

The model, per bar of length ``dt`` years:

- a two-state Markov volatility regime (calm / stressed) whose switching is
  defined in calendar time (calm spells last ``calm_days`` on average, stressed
  spells ``stress_days``), so any timeframe sees the same economy. The regime
  multipliers are normalised so that the long-run variance of the diffusion is
  exactly ``vol**2`` per year;
- log return ``(drift - sigma**2 / 2 - jump compensation) * dt + sigma * sqrt(dt) * z``
  plus a Poisson(``jumps * dt``) number of normal log jumps of standard
  deviation ``jump_size`` each. The jump compensation keeps ``E[S_t] = S_0 exp(drift t)``;
- open is the previous close; high and low are the exact Brownian-bridge extremes
  of the bar given its open, close and volatility (so intrabar ranges match the
  regime), clamped to enclose open and close;
- volume grows with the bar length, the regime and the size of the move, with
  log-normal noise.

Each component draws from its own child stream of ``SeedSequence(seed)``, in
order, so a series is a prefix of any longer series with the same seed and the
same seed gives the same bars bit for bit. Pure vectorised numpy: no compile step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from engine.data.bars import Bars
from engine.data.spec import (
    DataSpec,
    check_options,
    format_ns,
    option_bool,
    option_float,
    option_int,
    option_timeframe,
    option_timestamp,
    parse_timestamp,
)
from engine.data.timeframes import SECONDS_PER_YEAR, timeframe_seconds
from engine.errors import DataError
from engine.profile import profiler

DEFAULT_START_NS = parse_timestamp("2024-01-01T00:00:00Z")
MAX_BARS = 200_000_000
# Calm and stressed volatility multipliers before normalisation, and their mean spells.
_CALM, _STRESS = 0.75, 1.75
_REGIME_CHUNK = 4096

OPTIONS = (
    "bars", "seed", "timeframe", "start", "symbol", "price", "vol", "drift",
    "jumps", "jump_size", "regimes", "calm_days", "stress_days", "volume", "symbols", "trend", "trend_days",
)
#: The most symbols one ``synthetic:`` spec generates.
MAX_SYMBOLS = 10_000


@dataclass(frozen=True, slots=True)
class SyntheticParams:
    """The model's parameters (annualised where they are rates)."""

    bars: int = 100_000
    seed: int = 0
    timeframe: str = "1m"
    start_ns: int = DEFAULT_START_NS
    symbol: str = "SYNTH"
    price: float = 100.0
    vol: float = 0.5
    drift: float = 0.0
    jumps: float = 6.0
    jump_size: float = 0.03
    regimes: bool = True
    calm_days: float = 20.0
    stress_days: float = 5.0
    volume: float = 10.0  # mean units traded per minute in the calm regime
    trend: float = 0.0  # a planted edge: drift of +trend or -trend per year, switching sign ...
    trend_days: float = 10.0  # ... after spells of this mean length (0 trend: none)


@dataclass(frozen=True, slots=True)
class SyntheticPath:
    """Generated columns plus the hidden state: regime (0 calm, 1 stressed) and jumps per bar."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    regime: np.ndarray
    jump: np.ndarray


def regime_multipliers(params: SyntheticParams) -> tuple[float, float, float]:
    """(calm multiplier, stressed multiplier, stationary probability of stress).

    Normalised so that the stationary mean of ``multiplier**2`` is 1, i.e. the
    long-run diffusion variance is ``vol**2`` per year.
    """
    if not params.regimes:
        return 1.0, 1.0, 0.0
    p_stress = params.stress_days / (params.calm_days + params.stress_days)
    scale = np.sqrt((1.0 - p_stress) * _CALM**2 + p_stress * _STRESS**2)
    return float(_CALM / scale), float(_STRESS / scale), float(p_stress)


def _spells(stream: np.random.Generator, p_leave: float, n: int) -> np.ndarray:
    """A chunk of geometric spell lengths, each capped at ``n`` bars.

    A tiny ``p_leave`` (``calm_days=1e18``) draws lengths past int64: their sums wrapped
    negative, which hung the covering loop or made ``np.repeat`` write past its buffer
    (a segfault). A spell longer than the path is cut to it anyway, so the cap changes no path.
    """
    return np.minimum(stream.geometric(p_leave, _REGIME_CHUNK), n)


def _regime_path(n: int, params: SyntheticParams, dt_days: float, streams: list[np.random.Generator]) -> np.ndarray:
    """0/1 regime per bar: alternating geometric spells, started from the stationary law."""
    if not params.regimes:
        return np.zeros(n, dtype=np.int8)
    _, _, p_stress = regime_multipliers(params)
    start_stream, calm_stream, stress_stream = streams
    state = 1 if start_stream.random() < p_stress else 0
    p_leave = (min(1.0, dt_days / params.calm_days), min(1.0, dt_days / params.stress_days))
    lengths: list[np.ndarray] = []
    states: list[np.ndarray] = []
    covered = 0
    while covered < n:
        calm = _spells(calm_stream, p_leave[0], n)
        stress = _spells(stress_stream, p_leave[1], n)
        pair = (stress, calm) if state else (calm, stress)
        spells = np.empty(2 * _REGIME_CHUNK, dtype=np.int64)
        spells[0::2], spells[1::2] = pair
        labels = np.empty(2 * _REGIME_CHUNK, dtype=np.int8)
        labels[0::2], labels[1::2] = state, 1 - state
        lengths.append(spells)
        states.append(labels)
        covered += int(spells.sum())
    spells = np.concatenate(lengths)
    used = int(np.searchsorted(np.cumsum(spells), n)) + 1  # spells needed to cover n bars
    spells = spells[:used]
    spells[-1] -= int(spells.sum()) - n
    return np.repeat(np.concatenate(states)[:used], spells)


def _trend_path(n: int, days: float, dt_days: float, stream: np.random.Generator) -> np.ndarray:
    """+1/-1 per bar in geometric spells of ``days`` on average (a persistent trend a trend follower can ride)."""
    p_leave = min(1.0, dt_days / days)
    spells: list[np.ndarray] = []
    covered = 0
    while covered < n:
        chunk = _spells(stream, p_leave, n)
        spells.append(chunk)
        covered += int(chunk.sum())
    lengths = np.concatenate(spells)
    used = int(np.searchsorted(np.cumsum(lengths), n)) + 1
    lengths = lengths[:used]
    lengths[-1] -= int(lengths.sum()) - n
    signs = np.where(np.arange(used) % 2 == 0, 1.0, -1.0) * (1.0 if stream.random() < 0.5 else -1.0)
    return np.repeat(signs, lengths)


def simulate(params: SyntheticParams, where: str = "synthetic") -> SyntheticPath:
    """Generate the columns of ``params.bars`` bars (see the module docstring for the model).

    Works in place on a dozen arrays: in a fresh process, touching new memory
    costs more than the arithmetic.
    """
    n = params.bars
    bar_seconds = timeframe_seconds(params.timeframe)
    dt = bar_seconds / SECONDS_PER_YEAR
    step = bar_seconds * 1_000_000_000
    if params.start_ns + n * step > np.iinfo(np.int64).max:  # the last bar must end by 2262
        raise DataError(f"{where}: {n} bars of {params.timeframe} from {format_ns(params.start_ns)} run past 2262")
    # The tenth stream (the trend) came later: spawned children do not depend on how many follow.
    streams = [np.random.Generator(np.random.PCG64(s)) for s in np.random.SeedSequence(params.seed).spawn(10)]

    regime = _regime_path(n, params, bar_seconds / 86_400, streams[0:3])
    calm, stress, _ = regime_multipliers(params)
    stressed = regime == 1
    sigma = np.where(stressed, stress, calm)
    sigma *= params.vol * np.sqrt(dt)  # per-bar diffusion volatility
    var = np.square(sigma)

    # log return = (drift - compensation) dt - var / 2 + sigma z + jumps
    log_return = streams[3].standard_normal(n)
    log_return *= sigma
    scratch = np.multiply(var, -0.5)
    log_return += scratch
    compensation = params.jumps * np.expm1(0.5 * params.jump_size**2)
    log_return += (params.drift - compensation) * dt
    if params.trend > 0.0:
        log_return += _trend_path(n, params.trend_days, bar_seconds / 86_400, streams[9]) * (params.trend * dt)
    # Compound Poisson jumps: k jumps in a bar add a normal of variance k * jump_size**2.
    jump = streams[4].poisson(params.jumps * dt, n) if params.jump_size > 0 else np.zeros(n, dtype=np.int64)
    jumped = np.flatnonzero(jump)
    log_return[jumped] += streams[5].standard_normal(jumped.shape[0]) * params.jump_size * np.sqrt(jump[jumped])

    close = np.cumsum(log_return)
    close += np.log(params.price)
    np.exp(close, out=close)
    open_ = np.empty(n)
    open_[0] = params.price
    open_[1:] = close[:-1]

    # Exact Brownian-bridge maximum and minimum of the bar's log path given its
    # endpoints: (r +- sqrt(r^2 - 2 sigma^2 ln U)) / 2 with U uniform on (0, 1].
    np.square(log_return, out=scratch)
    high = _bridge_excursion(streams[6].random(n), var, scratch)
    high += log_return
    low = _bridge_excursion(streams[7].random(n), var, scratch)
    np.subtract(log_return, low, out=low)
    for extreme, bound in ((high, np.maximum), (low, np.minimum)):
        extreme *= 0.5
        np.exp(extreme, out=extreme)
        extreme *= open_
        bound(extreme, open_, out=extreme)
        bound(extreme, close, out=extreme)

    # Volume: bar length x regime^2 x (1 + |move| in sigmas) / 2 x mean-one log-normal noise.
    np.abs(log_return, out=scratch)
    with np.errstate(over="ignore"):  # capped just below
        np.divide(scratch, sigma, out=scratch, where=sigma > 0)
    scratch[sigma <= 0] = 0.0
    np.minimum(scratch, 20.0, out=scratch)  # a jump in a near-zero-vol market still trades finitely
    scratch *= 0.5
    scratch += 0.5
    volume = streams[8].standard_normal(n)
    volume *= 0.35
    volume -= 0.06125
    np.exp(volume, out=volume)
    volume *= scratch
    volume *= np.where(stressed, stress * stress, calm * calm)
    volume *= params.volume * (bar_seconds / 60.0)

    ts = np.arange(n, dtype=np.int64)
    ts *= step
    ts += params.start_ns
    return SyntheticPath(ts, open_, high, low, close, volume, regime, jump)


def _bridge_excursion(u: np.ndarray, var: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """``sqrt(r^2 - 2 var ln(1 - u))`` computed in ``u``'s memory."""
    np.negative(u, out=u)
    np.log1p(u, out=u)
    u *= var
    u *= -2.0
    u += r2
    np.sqrt(u, out=u)
    return u


def params_from_spec(spec: DataSpec) -> SyntheticParams:
    """Read and check the options of a ``synthetic:`` spec."""
    options, where = spec.options, spec.where
    check_options(options, OPTIONS, where)
    defaults = SyntheticParams()
    params = SyntheticParams(
        bars=option_int(options, "bars", where, default=defaults.bars, minimum=1, maximum=MAX_BARS),
        seed=option_int(options, "seed", where, default=defaults.seed, minimum=0, maximum=2**63 - 1),
        timeframe=option_timeframe(options, "timeframe", where, default=defaults.timeframe),
        start_ns=int(option_timestamp(options, "start", where, default=defaults.start_ns)),  # type: ignore[arg-type]
        symbol=options.get("symbol", defaults.symbol),
        price=option_float(options, "price", where, default=defaults.price, minimum=1e-9, maximum=1e12),
        vol=option_float(options, "vol", where, default=defaults.vol, minimum=0.0, maximum=10.0),
        drift=option_float(options, "drift", where, default=defaults.drift, minimum=-10.0, maximum=10.0),
        jumps=option_float(options, "jumps", where, default=defaults.jumps, minimum=0.0, maximum=1e6),
        jump_size=option_float(options, "jump_size", where, default=defaults.jump_size, minimum=0.0, maximum=1.0),
        regimes=option_bool(options, "regimes", where, default=defaults.regimes),
        calm_days=option_float(options, "calm_days", where, default=defaults.calm_days, minimum=1e-6),
        stress_days=option_float(options, "stress_days", where, default=defaults.stress_days, minimum=1e-6),
        volume=option_float(options, "volume", where, default=defaults.volume, minimum=0.0, maximum=1e15),
        trend=option_float(options, "trend", where, default=defaults.trend, minimum=0.0, maximum=100.0),
        trend_days=option_float(options, "trend_days", where, default=defaults.trend_days, minimum=1e-6),
    )
    return params


def load_synthetic_symbols(spec: DataSpec) -> list[Bars]:
    """``symbols=N``: N independent series (seeds ``seed``, ``seed+1``, ...) named ``SYMBOL1`` ... ``SYMBOLN``
    on the same timeline (``symbols=1`` is the plain series)."""
    count = option_int(spec.options, "symbols", spec.where, default=1, minimum=1, maximum=MAX_SYMBOLS)
    params = params_from_spec(spec)
    if count == 1:
        return [load_synthetic(spec, params)]
    return [
        load_synthetic(spec, replace(params, seed=params.seed + k, symbol=f"{params.symbol}{k + 1}"))
        for k in range(count)
    ]


def load_synthetic(spec: DataSpec, params: SyntheticParams | None = None) -> Bars:
    """Bars for a ``synthetic:`` spec (``params`` when already read from it)."""
    params = params or params_from_spec(spec)
    path = simulate(params, spec.where)
    for column in (path.ts, path.open, path.high, path.low, path.close, path.volume):
        column.flags.writeable = False  # Bars keeps read-only arrays without copying them
    with profiler.stage("data.validate"):
        try:
            return Bars(
                path.ts, path.open, path.high, path.low, path.close, path.volume,
                symbol=params.symbol,
                timeframe=params.timeframe,
                meta={"source": "synthetic", "spec": spec.text, "seed": params.seed, "dropped_rows": 0},
            )
        except DataError as error:
            raise DataError(
                f"{spec.where}: the generated prices left the float range ({error}); lower vol, drift or bars"
            ) from None
