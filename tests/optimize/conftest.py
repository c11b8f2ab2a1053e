"""Fixtures of the optimizer tests: small study files on small synthetic data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

STUDY = """\
name = "{name}"

[data]
spec = "synthetic:bars={bars},seed=11,timeframe=1m"

[strategy]
{strategy}

[space]
fast = {{ int = [2, {fast_high}], step = {fast_step} }}
slow = {{ int = [10, {slow_high}], step = {slow_step} }}
constraints = ["fast < slow"]

[backtest]
fee = 0.001

[search]
sampler = "{sampler}"
{trials_line}seed = {seed}
objective = "{objective}"
prune = "{prune}"
{search_extra}
[execution]
backend = "{backend}"
workers = {workers}
trial_timeout_s = {timeout}
max_consecutive_failures = {max_failures}
batch_size = {batch_size}
checkpoint_every = {checkpoint_every}
checkpoint_interval_s = {checkpoint_interval_s}
artifacts = "{artifacts}"

[validation]
out_of_sample = {oos}
"""

DEFAULTS: dict[str, object] = {
    "name": "t",
    "strategy": 'name = "sma_cross"',
    "bars": 3000,
    "fast_high": 20,
    "fast_step": 2,
    "slow_high": 80,
    "slow_step": 10,
    "sampler": "grid",
    "trials": None,
    "seed": 7,
    "objective": "sharpe",
    "prune": "none",
    "search_extra": "",
    "backend": "inline",
    "workers": 2,
    "timeout": 30,
    "max_failures": 20,
    "batch_size": 16,
    "checkpoint_every": 8,
    "checkpoint_interval_s": 0.2,
    "artifacts": "top:3",
    "oos": 0.0,
}


def write_study(directory: Path, **overrides: object) -> Path:
    """A study file with :data:`DEFAULTS` overridden; returns its path."""
    values = {**DEFAULTS, **overrides}
    trials = values.pop("trials")
    values["trials_line"] = "" if trials is None else f"trials = {trials}\n"
    path = directory / f"{values['name']}.toml"
    path.write_text(STUDY.format(**values))
    return path


@pytest.fixture
def study_file(tmp_path: Path) -> Callable[..., Path]:
    """``study_file(**overrides)`` writes a study file into the test's directory."""
    return lambda **overrides: write_study(tmp_path, **overrides)
