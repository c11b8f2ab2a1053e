"""The inline and process backends against the backend conformance suite."""

from __future__ import annotations

from typing import Any

import pytest

from engine.optimize.backends.inline import InlineBackend
from engine.optimize.backends.process import ProcessBackend
from tests.optimize.backend_conformance import BackendConformance


class TestInlineBackend(BackendConformance):
    @pytest.fixture
    def backend_factory(self) -> Any:
        return lambda: InlineBackend(trial_timeout_s=30.0)


class TestProcessBackend(BackendConformance):
    @pytest.fixture
    def backend_factory(self) -> Any:
        return lambda: ProcessBackend(workers=2, trial_timeout_s=30.0)


class TestSpawnedProcessBackend(BackendConformance):
    """Where there is no fork server, workers are spawned: the same contract holds."""

    @pytest.fixture
    def backend_factory(self) -> Any:
        return lambda: ProcessBackend(workers=2, trial_timeout_s=30.0, context="spawn")
