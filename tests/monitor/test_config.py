"""Thresholds from the global config and the study file's [alerts]."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.monitor.alert_spec import AlertsSpec, Threshold
from engine.monitor.alerts import merge_specs, resolve_alerts


def write_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    monkeypatch.setenv("GENESIS_CONFIG", str(path))
    return path


def test_defaults_without_any_file() -> None:
    spec = resolve_alerts()
    assert spec == AlertsSpec()
    assert spec.memory_mb == Threshold(warning=1024.0, critical=2048.0)
    assert spec.event_rate == Threshold(warning=500.0, critical=100.0)
    assert spec.bus_p99_ms == Threshold(warning=100.0, critical=500.0)
    assert spec.error_rate == Threshold(warning=0.01, critical=0.05)


def test_study_table_overrides_global_key_by_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(
        tmp_path,
        monkeypatch,
        "[theme]\nname = 'x'\n[alerts]\nmin_duration_s = 5.0\nmemory_mb = { warning = 3000, critical = 6000 }\n",
    )
    assert resolve_alerts().memory_mb == Threshold(warning=3000.0, critical=6000.0)
    spec = resolve_alerts({"memory_mb": {"critical": 8000}, "hysteresis": 0.2})
    assert spec.memory_mb == Threshold(warning=3000.0, critical=8000.0)
    assert spec.min_duration_s == 5.0 and spec.hysteresis == 0.2


def test_decoded_study_spec_merges_its_non_default_fields(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, monkeypatch, "[alerts]\nmin_duration_s = 5.0\nbus_p99_ms = { warning = 50 }\n")
    study = AlertsSpec(bus_p99_ms=Threshold(warning=100.0, critical=900.0), hysteresis=0.3)
    spec = resolve_alerts(study)
    assert spec.bus_p99_ms == Threshold(warning=50.0, critical=900.0)  # warning equal to default: global kept
    assert spec.hysteresis == 0.3 and spec.min_duration_s == 5.0
    assert merge_specs(AlertsSpec(), AlertsSpec()) == AlertsSpec()


def test_errors_name_the_file_and_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path, monkeypatch, "[alerts]\nmemory_mb = { warning = 'lots' }\n")
    with pytest.raises(ConfigError) as error:
        resolve_alerts()
    message = str(error.value)
    assert message.startswith(f"{path}: alerts.memory_mb.warning: expected")
    assert "\n" not in message
    path.write_text("[alerts]\n")
    with pytest.raises(ConfigError, match=r"^study\.toml: alerts\.memory_gb: unknown key$"):
        resolve_alerts({"memory_gb": {"warning": 1}})
    path.write_text("alerts = 3\n")
    with pytest.raises(ConfigError, match="alerts: expected a table"):
        resolve_alerts()
