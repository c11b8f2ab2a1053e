"""The Monte Carlo fan and the importance bars: well-formed SVG that draws what it is given."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np

from engine.analysis.montecarlo import monte_carlo
from engine.headless.charts import importance_svg, montecarlo_svg

NS = "{http://www.w3.org/2000/svg}"


def test_the_fan_draws_two_bands_and_the_median() -> None:
    section = {"trial": 7, **monte_carlo(np.random.default_rng(0).normal(0.01, 0.03, 80), paths=500).as_dict()}
    root = ET.fromstring(montecarlo_svg(section))
    polygons = root.findall(f"{NS}polygon")
    assert len(polygons) == 2  # 5-95% and 25-75%
    median = root.findall(f"{NS}polyline")
    assert len(median) == 1 and len(median[0].get("points", "").split()) == len(section["fan"]["trades"])
    assert "trial #7" in montecarlo_svg(section)
    assert "no stored trades" in montecarlo_svg(None)


def test_importance_bars_are_as_long_as_their_shares() -> None:
    root = ET.fromstring(importance_svg({"slow": 0.8, "fast": 0.2, "stop": 0.0}, objective="sharpe"))
    bars = [r for r in root.findall(f"{NS}rect") if r.find(f"{NS}title") is not None]
    widths = [float(r.get("width", "0")) for r in bars]
    assert len(bars) == 3 and widths[0] == 4 * widths[1] and widths[2] == 0.0
    title = bars[0].find(f"{NS}title")
    assert title is not None and title.text == "slow: 80.0%"
    assert "no complete trial" in importance_svg({})
