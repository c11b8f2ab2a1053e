"""The telemetry mapping (the console's engine, the headless report and replay share it)."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest

from engine.store.records import TrialRecord, TrialState
from engine.telemetry import Heatmap
from engine.telemetry_map import build_heatmap, thin_curve, trial_detail, validation_from_dict


def test_validation_report_maps_best_trial_and_deflated_sharpe() -> None:
    raw = {
        "objective": "sharpe",
        "direction": "maximize",
        "holdout": {
            "in_sample": [0, 750], "out_of_sample": [750, 1000],
            "trials": [
                {"rank": 1, "key": "a", "params": {"fast": 5}, "objective_in": 1.2, "objective_out": 0.4,
                 "in_sample": {"sharpe": 1.2, "total_return": 0.3}, "out_of_sample": {"sharpe": 0.4, "total_return": 0.05}},
                {"rank": 2, "key": "b", "params": {"fast": 6}, "objective_in": 1.1, "objective_out": 0.9,
                 "in_sample": {"sharpe": 1.1}, "out_of_sample": {"sharpe": 0.9}},
            ],
            "mean_in": 1.15, "mean_out": 0.65, "retention": 0.56,
        },
        "walk_forward": {"mode": "rolling", "folds": [{}, {}, {}], "mean_train_objective": 1.0,
                         "mean_test_objective": 0.5, "efficiency": 0.5, "best_chosen": 1},
        "deflated_sharpe": {"dsr": 0.83, "sharpe": 0.01, "sharpe_annualised": 1.2, "expected_max_sharpe": 0.008,
                            "n_trials": 4000, "sharpe_variance": 0.0001, "n_returns": 750},
    }
    v = validation_from_dict(raw, trials=10)
    assert v is not None
    assert dict(v.in_sample) == {"sharpe": 1.2, "total_return": 0.3}
    assert dict(v.out_of_sample) == {"sharpe": 0.4, "total_return": 0.05}
    assert v.deflated_sharpe == 0.83
    assert v.trials_considered == 4000
    assert v.folds == 3
    assert v.probability_overfit is None  # a study stored before PBO was recorded


def test_the_stored_pbo_is_the_consoles_probability_of_overfitting() -> None:
    v = validation_from_dict({"objective": "sharpe", "holdout": None, "pbo": {"pbo": 0.62, "blocks": 16}}, 5)
    assert v is not None and v.probability_overfit == 0.62


def test_validation_absent_or_empty_is_none() -> None:
    assert validation_from_dict(None, 5) is None
    assert validation_from_dict({"objective": "sharpe", "holdout": None, "deflated_sharpe": None}, 5) is None


def test_heatmap_keeps_the_best_value_per_cell() -> None:
    points = [({"fast": f, "slow": s}, float(f * 10 + s)) for f in (1, 2, 3) for s in (10, 20)]
    points.append(({"fast": 1, "slow": 10}, 99.0))
    heat = build_heatmap(points, maximize=True)
    assert heat is not None and heat.x_param == "fast" and heat.y_param == "slow"
    assert heat.x_values == (1.0, 2.0, 3.0) and heat.y_values == (10.0, 20.0)
    assert heat.values[0][0] == 99.0  # the better of the two trials in that cell
    assert heat.values[1][2] == 50.0
    low = build_heatmap(points, maximize=False)
    assert low is not None and low.values[0][0] == 20.0


def test_thin_curve_keeps_ends_and_bounds_length() -> None:
    values = list(range(10_000))
    thinned = thin_curve(values, 400)
    assert len(thinned) == 400 and thinned[0] == 0 and thinned[-1] == 9_999
    assert thin_curve([1, 2, 3]) == (1.0, 2.0, 3.0)


def _trial(number: int, error: str | None = None) -> TrialRecord:
    state = TrialState.FAILED if error else TrialState.COMPLETE
    return TrialRecord(number, f"k{number}", {"slow": 20, "fast": 5}, state, {"sharpe": 1.5, "flag": True, "note": "x"},
                       None if error else 1.5, 0.0, 0.1, "w0", error)


def test_trial_detail_maps_trades_equity_and_says_why_parts_are_missing() -> None:
    trades = np.zeros(250, dtype=[("entry_idx", "i8"), ("exit_idx", "i8"), ("direction", "i8"), ("entry_price", "f8"),
                                  ("exit_price", "f8"), ("units", "f8"), ("pnl", "f8"), ("return", "f8")])
    trades["entry_idx"] = np.arange(250)
    trades["direction"] = -1
    detail = trial_detail("s", "sharpe", _trial(7), {"equity": np.linspace(1, 2, 1000), "trades": trades})
    assert (detail.study, detail.number, detail.value, detail.objective) == ("s", 7, 1.5, "sharpe")
    assert detail.params == (("fast", 5), ("slow", 20)) and detail.metrics == (("sharpe", 1.5),)
    assert len(detail.equity) == 400 and detail.equity[-1] == 2.0
    assert len(detail.trades) == 200 and detail.trades[0].entry == 50 and detail.trades[0].side == "short"
    assert detail.note == "" and detail.state == "complete"

    no_artifacts = trial_detail("s", "sharpe", _trial(8), {})
    assert no_artifacts.equity == () and no_artifacts.trades == ()
    assert no_artifacts.note == "equity and trades are stored for the top trials only"
    failed = trial_detail("s", "sharpe", _trial(9, "ValueError: boom\n  traceback..."), {})
    assert failed.note == "ValueError: boom" and failed.state == "failed"


def test_heatmap_bins_random_integer_parameters_into_whole_number_cells_that_fill() -> None:
    import random

    rng = random.Random(5)
    points = []
    for _ in range(5000):
        fast, slow = rng.randint(3, 60), rng.randrange(20, 301, 2)
        if fast < slow:
            points.append(({"fast": fast, "slow": slow}, float(fast + slow)))
    heat = build_heatmap(points, maximize=True)
    assert heat is not None
    assert len(heat.x_values) >= 12 and len(heat.y_values) >= 12  # a grid, not a dozen cells
    assert all(v.is_integer() for v in heat.x_values + heat.y_values)  # integer parameters, integer edges
    cells = [v for row in heat.values for v in row]
    assert sum(v is not None for v in cells) / len(cells) > 0.9  # every cell gets trials (fast < slow always)
    # every trial lands in the bin whose lower edge is at or below it: the best of cell (0, 0) is in it
    width_x = heat.x_values[1] - heat.x_values[0]
    width_y = heat.y_values[1] - heat.y_values[0]
    in_first = [v for p, v in points if p["fast"] < heat.x_values[0] + width_x and p["slow"] < heat.y_values[0] + width_y]
    assert heat.values[0][0] == max(in_first)


def test_heatmap_bins_continuous_parameters_into_equal_widths() -> None:
    import random

    rng = random.Random(3)
    points = [({"a": 0.0, "b": 0.0}, -1.0), ({"a": 1.0, "b": 1.0}, 5.0)]
    points += [({"a": rng.random(), "b": rng.random()}, rng.random()) for _ in range(5000)]
    heat = build_heatmap(points, maximize=False)
    assert heat is not None and len(heat.x_values) == 16 and len(heat.y_values) == 16
    assert heat.x_values[0] == 0.0 and abs(heat.x_values[1] - 1 / 16) < 1e-12
    assert heat.values[0][0] == -1.0 and heat.values[15][15] is not None  # the top edge is in the last bin
    assert all(v is not None for row in heat.values for v in row)  # ~20 trials a cell: every cell filled


def test_paper_orders_are_one_row_each_with_their_fill() -> None:
    from engine.live.loop import LoopState, OrderView
    from engine.live.records import Fill
    from engine.live.risk import RiskState
    from engine.telemetry_map import trading_from_state

    orders = (
        OrderView(1, 10, 1, "pending"), OrderView(1, 10, 1, "filled"),
        OrderView(2, 20, 0, "pending"), OrderView(2, 20, 0, "filled"),
        OrderView(3, 30, 1, "pending"),
    )
    fills = (
        Fill(1, 11, 60_000_000_000, "SYN", 1, 2.0, 100.0, 0.1, "signal", True),
        Fill(2, 21, 120_000_000_000, "SYN", -1, 2.0, 110.0, 0.1, "signal", False),
    )
    state = LoopState(
        running=True, paused=False, finished=False, strategy="s", symbol="SYN", bars_seen=30, bars_total=100,
        last_bar_ts=None, cash=0.0, equity=1.0, realized_pnl=0.0, unrealized_pnl=0.0, drawdown=0.0,
        max_drawdown=0.0, side=0, units=0.0, entry_price=0.0, mark_price=0.0, trades=1, equity_curve=(),
        orders=orders, fills=fills, risk=RiskState("closed", False, False, "", 0.0, 0.1, 0), elapsed_s=1.0, bars_per_s=30.0,
    )
    rows = trading_from_state(state).orders
    assert [(o.order_id, o.status) for o in rows] == [(1, "filled"), (2, "filled"), (3, "pending")]
    assert (rows[0].ts, rows[0].units, rows[0].price, rows[0].side) == (60.0, 2.0, 100.0, "long")
    assert (rows[1].ts, rows[1].units, rows[1].price, rows[1].side) == (120.0, 2.0, 110.0, "flat")
    assert (rows[2].ts, rows[2].units, rows[2].price) == (None, None, None)  # not filled yet: nothing to show


def test_the_smoothed_surface_averages_neighbours_and_fills_untried_cells() -> None:
    from engine.telemetry_map import smooth_grid

    grid = [
        [1.0, None, None, None],
        [None, 3.0, None, None],
        [None, None, None, None],
        [None, None, None, 9.0],
    ]
    smoothed = smooth_grid(grid)
    assert smoothed is not None
    assert smoothed[0][0] == 2.0  # itself and (1, 1), one step away
    assert smoothed[1][1] == 2.0 and smoothed[0][2] == 3.0  # untried: the tried cells one step away
    assert smoothed[2][2] == 6.0  # (1, 1) and (3, 3), both one step away
    assert smoothed[3][0] == 3.0  # none one step away; at two steps only (1, 1)
    assert smooth_grid([[None, None]]) is None


def test_a_random_sampler_heatmap_carries_the_smoothed_surface() -> None:
    points = [({"fast": 2 + (i * 37) % 58, "slow": 20 + (i * 53) % 280}, float(i % 7)) for i in range(60)]
    heat = build_heatmap(points, maximize=True)
    assert heat is not None and heat.smoothed is not None
    assert len(heat.smoothed) == len(heat.y_values) and len(heat.smoothed[0]) == len(heat.x_values)
    untried = sum(v is None for row in heat.values for v in row)
    assert untried > 0 and all(v == v for row in heat.smoothed for v in row)  # every cell shaded, no NaN


def test_the_heatmap_shows_any_two_parameters_and_h_cycles_through_every_pair(tmp_path: Any) -> None:
    from engine.runtime._watch import StudyWatch
    from engine.telemetry_map import heatmap_pairs

    points = [({"a": i % 7, "b": i % 5, "c": (i * 3) % 11, "flag": True}, float(i)) for i in range(200)]
    assert heatmap_pairs(points) == [("a", "c"), ("b", "c"), ("a", "b")]  # the two with most values first
    chosen = build_heatmap(points, maximize=True, axes=("c", "b"))
    assert chosen is not None and (chosen.x_param, chosen.y_param) == ("c", "b")
    assert len(chosen.x_values) == 11 and len(chosen.y_values) == 5
    best = max(v for p, v in points if p["c"] == 0 and p["b"] == 0)
    assert chosen.values[0][0] == best
    fallback = build_heatmap(points, maximize=True, axes=("a", "flag"))  # a boolean cannot be an axis
    assert fallback is not None and (fallback.x_param, fallback.y_param) == ("a", "c")

    watch = StudyWatch("s", tmp_path / "s.db", maximize=True)  # type: ignore[arg-type]
    watch.add([p for p, _ in points], [v for _, v in points])
    watch.heatmap = build_heatmap(points, True)
    seen = [watch.next_heatmap_axes() for _ in range(4)]
    assert seen == [("b", "c"), ("a", "b"), ("a", "c"), ("b", "c")]  # every pair, then round again
    assert watch.heatmap is not None and (watch.heatmap.x_param, watch.heatmap.y_param) == ("b", "c")


def test_a_basket_state_maps_to_one_position_per_open_symbol_and_one_row_per_symbol() -> None:
    from engine.live.basket import BasketMember, BasketState
    from engine.live.records import Fill
    from engine.live.risk import RiskState
    from engine.telemetry_map import trading_from_state

    members = (
        BasketMember("BTC", 1, 2.0, 100.0, 110.0, 20.0, 3, 150.0),
        BasketMember("ETH", 0, 0.0, 0.0, 50.0, 0.0, 2, -30.0),
        BasketMember("SOL", -1, 4.0, 20.0, 18.0, 8.0, 1, 0.0),
    )
    state = BasketState(
        running=True, paused=False, finished=False, strategy="sma_cross", allocation="split", bars_seen=40,
        bars_total=100, last_bar_ts=120_000_000_000, start_cash=1_000.0, cash=700.0, equity=1_148.0,
        realized_pnl=120.0, drawdown=0.02, equity_curve=(1_000.0, 1_148.0), members=members,
        fills=(Fill(7, 39, 60_000_000_000, "SOL", -1, 4.0, 20.0, 0.1, "signal", True),),
        risk=RiskState("closed", False, False, "", 0.0, 0.1, 0), elapsed_s=1.0,
    )  # fmt: skip
    tr = trading_from_state(state)
    assert tr.symbol == "basket of 3 (split)" and tr.equity == 1_148.0 and tr.bars_seen == 40
    assert [(p.symbol, p.units, p.avg_price, p.mark) for p in tr.positions] == [
        ("BTC", 2.0, 100.0, 110.0), ("SOL", -4.0, 20.0, 18.0)]  # ETH is flat: no position row
    rows = {r.symbol: r for r in tr.symbols}
    assert list(rows) == ["BTC", "ETH", "SOL"]
    assert (rows["BTC"].trades, rows["BTC"].realized_pnl, rows["BTC"].position) == (3, 150.0, 2.0)
    assert rows["BTC"].contribution == pytest.approx(0.17)  # (150 realized + 20 unrealized) / 1,000
    assert rows["ETH"].contribution == pytest.approx(-0.03) and rows["SOL"].position == -4.0
    assert [(f.symbol, f.side, f.status) for f in tr.fills] == [("SOL", "sell", "filled")]
    assert tr.last_bar_ts == 120.0


def test_one_symbol_s_state_carries_no_basket_rows() -> None:
    from engine.live.loop import LoopState
    from engine.live.risk import RiskState
    from engine.telemetry_map import trading_from_state

    state = LoopState(
        running=True, paused=False, finished=False, strategy="s", symbol="SYN", bars_seen=3, bars_total=10,
        last_bar_ts=None, cash=1.0, equity=1.0, realized_pnl=0.0, unrealized_pnl=0.0, drawdown=0.0,
        max_drawdown=0.0, side=0, units=0.0, entry_price=0.0, mark_price=0.0, trades=0, equity_curve=(),
        orders=(), fills=(), risk=RiskState("closed", False, False, "", 0.0, 0.1, 0), elapsed_s=1.0, bars_per_s=3.0,
    )  # fmt: skip
    tr = trading_from_state(state)
    assert tr.symbol == "SYN" and tr.symbols == ()


def _heatmap_one_point_at_a_time(points: list[tuple[dict[str, Any], float]], maximize: bool,
                                 axes: tuple[str, str] | None = None) -> Heatmap | None:
    """The heatmap as it was built before it was columnar (a point at a time): the reference."""
    from engine.telemetry_map import _Axis, _distinct_values, _varied, smooth_grid

    if len(points) < 4:
        return None
    distinct = _distinct_values(points)
    if axes is not None and all(len(distinct.get(name, ())) >= 2 for name in axes) and axes[0] != axes[1]:
        names = list(axes)
    else:
        names = sorted(_varied(distinct)[:2])
        if len(names) < 2:
            return None
    x_axis, y_axis = (_Axis.of(name, distinct[name]) for name in names)
    grid: list[list[float | None]] = [[None] * len(x_axis.values) for _ in y_axis.values]
    for params, value in points:
        x, y = params.get(x_axis.name), params.get(y_axis.name)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y)):
            continue
        xi, yi = x_axis.index(float(x)), y_axis.index(float(y))  # type: ignore[arg-type]
        current = grid[yi][xi]
        if current is None or (value > current if maximize else value < current):
            grid[yi][xi] = value
    return Heatmap(x_axis.name, y_axis.name, tuple(x_axis.values), tuple(y_axis.values),
                   tuple(tuple(row) for row in grid), smooth_grid(grid))


def _random_points(seed: int, n: int) -> list[tuple[dict[str, Any], float]]:
    """Parameters with few values, whole-number and fractional bins, ties (signed zeros too), gaps."""
    rng = random.Random(seed)
    points = []
    for i in range(n):
        params: dict[str, Any] = {"few": rng.choice([1, 2, 3]), "wide": rng.randrange(2, 400),
                                  "frac": rng.uniform(-1.0, 1.0), "flag": rng.random() < 0.5}
        if i % 11 == 0:
            del params["wide"]  # a trial without this parameter: no cell on its axis
        if i % 13 == 0:
            params["frac"] = "n/a"  # not a number: no coordinate
        value = rng.choice([0.0, -0.0, 1.5, -2.25, round(rng.gauss(0.0, 1.0), 1)])
        points.append((params, value))
    return points


@pytest.mark.parametrize("seed", range(6))
def test_an_incremental_heatmap_equals_a_full_rebuild_and_the_point_at_a_time_one(seed: int) -> None:
    from engine.telemetry_map import HeatPoints

    points = _random_points(seed, 700)
    rng = random.Random(seed + 100)
    maximize = seed % 2 == 0
    axes = [None, ("wide", "frac"), ("few", "wide")][seed % 3]
    heat, done = HeatPoints(), 0
    while done < len(points):
        take = rng.choice([1, 3, 17, 120])
        chunk = points[done : done + take]
        heat.extend([p for p, _ in chunk], [v for _, v in chunk])
        done += len(chunk)
        incremental = heat.heatmap(maximize, axes)
        full = build_heatmap(points[:done], maximize, axes)
        reference = _heatmap_one_point_at_a_time(points[:done], maximize, axes)
        # repr: -0.0 and 0.0 compare equal, but a cell must keep the first of its best values
        assert repr(incremental) == repr(full) == repr(reference), done
    assert incremental is not None and incremental.values != ()


def test_the_watch_takes_trials_in_pages_as_it_would_all_at_once(tmp_path: Any) -> None:
    from engine.runtime._watch import StudyWatch, _importance

    points = _random_points(7, 500)
    params, values = [p for p, _ in points], [v for _, v in points]
    values[5] = math.inf  # a non-finite objective is no point
    whole = StudyWatch("s", tmp_path / "s.db", maximize=False)  # type: ignore[arg-type]
    whole.add(params, values)
    paged = StudyWatch("s", tmp_path / "s.db", maximize=False)  # type: ignore[arg-type]
    for start in range(0, len(points), 64):
        paged.add(params[start : start + 64], values[start : start + 64])
        paged.heatmap = paged.heat.heatmap(False)
    finite = [(p, v) for p, v in zip(params, values, strict=True) if math.isfinite(v)]
    best, curve = math.inf, []
    for _, v in finite:
        best = min(best, v)
        curve.append(best)
    assert repr(paged.convergence) == repr(whole.convergence) == repr(curve)
    assert paged.values == whole.values == [v for _, v in finite]
    assert repr(paged.heatmap) == repr(whole.heat.heatmap(False)) == repr(build_heatmap(finite, False))
    assert paged.heat.names == sorted({name for p, _ in finite for name in p})
    for watch in (paged, whole):  # (a bool, a string, a missing value: its parameters' dicts are encoded)
        assert _importance(watch.params, watch.values, watch.heat) == _importance_of(finite)
    numbers = [({"few": p["few"], "wide": p.get("wide", 7) * 0.5}, v) for p, v in finite]
    watch = StudyWatch("s", tmp_path / "s.db", maximize=False)  # type: ignore[arg-type]
    for start in range(0, len(numbers), 64):  # every value a number: the heatmap's columns are encoded
        watch.add([p for p, _ in numbers[start : start + 64]], [v for _, v in numbers[start : start + 64]])
    assert _importance(watch.params, watch.values, watch.heat) == _importance_of(numbers)


def _importance_of(points: list[tuple[dict[str, Any], float]]) -> tuple[tuple[str, float], ...]:
    """Importance from the trials' parameter dicts (the reference of the watch's)."""
    import numpy as np

    from engine.analysis.importance import importance

    params = [p for p, _ in points]
    scores = importance(params, np.array([v for _, v in points]), names=sorted({n for p in params for n in p}))
    return tuple((name, float(share)) for name, share in scores.items())


def _smooth_by_scanning_every_tried_cell(grid: list[list[float | None]]) -> tuple[tuple[float, ...], ...] | None:
    """The smoothed surface as it was computed before it looked at windows only: the reference."""
    rows, cols = len(grid), len(grid[0]) if grid else 0
    tried = [(y, x, v) for y, row in enumerate(grid) for x, v in enumerate(row) if v is not None and math.isfinite(v)]
    if not tried:
        return None
    out = []
    for y in range(rows):
        line = []
        for x in range(cols):
            radius = 1
            while not (near := [v for ty, tx, v in tried if max(abs(ty - y), abs(tx - x)) <= radius]):
                radius += 1
            line.append(sum(near) / len(near))
        out.append(tuple(line))
    return tuple(out)


@pytest.mark.parametrize("seed", range(8))
def test_the_smoothed_surface_sums_its_neighbours_in_the_same_order_as_a_scan_of_every_cell(seed: int) -> None:
    from engine.telemetry_map import smooth_grid

    rng = random.Random(seed)
    rows, cols = rng.randint(1, 16), rng.randint(1, 16)
    fill = rng.choice([0.02, 0.2, 0.9])  # sparse grids reach out several rings
    grid = [[rng.choice([rng.uniform(-1e3, 1e3), 0.1, math.inf, math.nan]) if rng.random() < fill else None
             for _ in range(cols)] for _ in range(rows)]
    assert repr(smooth_grid(grid)) == repr(_smooth_by_scanning_every_tried_cell(grid))
