"""The [bus] table of the global config file."""

from __future__ import annotations

import pytest

from engine.bus import EventBus, Lane, load_bus_config
from engine.errors import ConfigError


def test_defaults_without_a_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENESIS_CONFIG", str(tmp_path / "absent.toml"))
    cfg = load_bus_config()
    assert (
        cfg.critical.policy == "block"
        and cfg.normal.capacity == 65_536
        and cfg.archive.topics == []
    )


def test_values_from_the_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        "[bus]\nslice_us = 100\n[bus.low]\ncapacity = 128\npolicy = 'drop_newest'\nweight = 2\n"
        "[bus.archive]\ntopics = ['orders.#']\nretention_days = 7\n"
    )
    monkeypatch.setenv("GENESIS_CONFIG", str(path))
    bus = EventBus.from_config()
    m = bus.metrics().lane(Lane.LOW)
    assert (m.capacity, m.policy, m.weight) == (128, "drop_newest", 2)
    assert bus.config.slice_us == 100 and bus.config.archive.topics == ["orders.#"]
    assert bus.config.archive.retention_days == 7.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[bus.high]\ncapacity = 'many'\n", r"\[bus\]: high\.capacity: expected `int`"),
        ("[bus]\nlanes = 4\n", r"\[bus\]: lanes: unknown key"),
        ("[bus.critical]\npolicy = 'drop_oldest'\n", r"critical\.policy: CRITICAL never drops"),
        ("[bus.archive]\ntopics = ['a..b']\n", r"archive\.topics"),
    ],
)
def test_bad_values_name_the_file_and_key(
    tmp_path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    monkeypatch.setenv("GENESIS_CONFIG", str(path))
    with pytest.raises(ConfigError, match=message) as info:
        load_bus_config()
    assert str(path) in str(info.value) and "\n" not in str(info.value)
