"""Is the best trial real? Overfitting probability (CSCV), Monte Carlo of trades, stability, importance.

Pure computations over arrays a study already stored: per-block returns,
trade returns, parameters and objectives. Nothing here touches a store or
the console; reports and the console call these functions on what they read.
"""

from __future__ import annotations

from engine.analysis.pbo import PboResult, cscv

__all__ = ["PboResult", "cscv"]
