"""Is the best trial real? Overfitting probability (CSCV), Monte Carlo of trades, stability, importance.

Pure computations over arrays a study already stored: per-block returns,
trade returns, parameters and objectives. Nothing here touches a store or
the console; reports and the console call these functions on what they read.
"""

from __future__ import annotations

from engine.analysis.importance import importance
from engine.analysis.montecarlo import MonteCarloResult, monte_carlo
from engine.analysis.pbo import PboResult, cscv
from engine.analysis.stability import StabilityResult, stability

__all__ = ["MonteCarloResult", "PboResult", "StabilityResult", "cscv", "importance", "monte_carlo", "stability"]
