"""``genesis tui --paper STUDY.toml``'s inputs: a study file's data, strategy and options, with its best
stored trial's parameters, else the strategy's defaults."""

from __future__ import annotations

import asyncio
from pathlib import Path

from engine.backtest import resolve_strategy
from engine.data import Basket
from engine.optimize import Study
from engine.runtime import study_paper

STUDY = """\
name = "paper-basket"

[data]
specs = ["synthetic:bars=600,seed=3,timeframe=1h,symbols=2"]

[strategy]
name = "sma_cross"

[space]
fast = { int = [3, 9], step = 3 }
slow = { int = [20, 40], step = 20 }

[backtest]
fee = 0.001
allocation = "shared"
max_positions = 1

[search]
sampler = "grid"
objective = "total_return"

[execution]
backend = "inline"
"""


def test_without_a_stored_trial_the_paper_loop_takes_the_strategy_s_defaults(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(STUDY)
    paper = study_paper(path, tmp_path / "none.db")
    defaults = {p.name: p.default for p in resolve_strategy("sma_cross", None).params}
    assert paper.origin == "the strategy's defaults" and paper.params == defaults
    assert isinstance(paper.data, Basket) and paper.data.n_symbols == 2
    assert (paper.options.allocation, paper.options.max_positions, paper.options.fee) == ("shared", 1, 0.001)


def test_the_paper_loop_takes_the_best_stored_trial_s_parameters(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(STUDY)
    db = tmp_path / "s.db"

    async def best() -> dict[int, dict[str, object]]:
        study = Study.from_file(path, db=db)
        await study.run()
        trials = [t for t in await study.trials() if t.objective is not None]
        top = max(t.objective for t in trials if t.objective is not None)
        return {t.number: dict(t.params) for t in trials if t.objective == top}  # ties: any of them

    tied = asyncio.run(best())
    paper = study_paper(path, db)
    number = int(paper.origin.removeprefix("trial #").removesuffix(" of paper-basket"))
    assert number in tied and {k: paper.params[k] for k in tied[number]} == tied[number]
    assert len(tied) < 6  # the grid's trials differ: the best is a choice, not any trial
