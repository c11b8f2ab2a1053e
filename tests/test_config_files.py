"""Every file Genesis reads as text goes through one capped reader: a file that is not
UTF-8, too large (or endless, like /dev/zero), nested too deep or holding nan/inf is
bad input, one line naming the file, exit 2 on the command line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import (
    MAX_TOML_DEPTH,
    config_section,
    load_toml,
    parse_toml,
    read_capped,
    read_text,
)
from engine.errors import ConfigError, DataError, quoted

STUDY = """\
name = "files"
[data]
spec = "synthetic:bars=300,seed=1"
[strategy]
name = "sma_cross"
[space]
fast = { int = [5, 10] }
slow = { int = [20, 30] }
"""


def test_read_capped_reads_at_most_cap_plus_one_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"x" * 10)
    assert read_capped(path, 10) == b"x" * 10
    with pytest.raises(ConfigError, match=r"f\.txt: larger than 9 bytes"):
        read_capped(path, 9)
    with pytest.raises(DataError, match="larger than 9 bytes"):
        read_capped(path, 9, DataError)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_dev_zero_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "zero.toml"
    os.symlink("/dev/zero", link)
    with pytest.raises(ConfigError, match=r"zero\.toml: larger than"):
        load_toml(link)


def test_not_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "study.toml"
    path.write_bytes(b'name = "a"\n\n# caf\xe9\n')
    with pytest.raises(ConfigError) as error:
        read_text(path)
    assert str(error.value) == f"{path}: line 3: not UTF-8 text (byte 0xe9); expected a UTF-8 text file"


def test_directory_and_missing_file_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="it is a directory"):
        load_toml(tmp_path)
    with pytest.raises(ConfigError, match="file not found"):
        load_toml(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    "text",
    [
        "a = " + "[" * 5000 + "]" * 5000,  # tomllib recurses: RecursionError before the fix
        "a = " + "{b = " * 3000 + "1" + "}" * 3000,
        ".".join(["k"] * 20_000) + " = 1",  # parsed without recursion, but no config is this deep
        "a = " + "[" * (MAX_TOML_DEPTH + 1) + "]" * (MAX_TOML_DEPTH + 1),
    ],
    ids=["arrays", "inline-tables", "dotted-keys", "just-past-the-limit"],
)
def test_deep_nesting_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^x\.toml: .*nested deeper than 32 levels$"):
        parse_toml(text, "x.toml")


def test_nesting_at_the_limit_is_accepted() -> None:
    depth = MAX_TOML_DEPTH - 1  # the key itself is one level
    assert parse_toml("a = " + "[" * depth + "]" * depth, "x.toml")["a"] is not None


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "+nan"])
def test_non_finite_numbers_are_refused_naming_the_key(value: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_toml(f"[hyperliquid]\nread_timeout_s = {value}\n", "config.toml")
    assert str(error.value).startswith("config.toml: hyperliquid.read_timeout_s: expected a finite number, got ")


def test_nan_read_timeout_in_the_global_config_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.data.hyperliquid import HyperliquidConfig, check_config, load_config

    path = tmp_path / "config.toml"
    path.write_text("[hyperliquid]\nread_timeout_s = nan\n")
    monkeypatch.setenv("GENESIS_CONFIG", str(path))
    with pytest.raises(ConfigError, match=r"hyperliquid\.read_timeout_s: expected a finite number, got nan"):
        config_section("hyperliquid", HyperliquidConfig)
    with pytest.raises(ConfigError, match="read_timeout_s"):
        load_config()
    # The Python API checks the struct too (no TOML involved).
    for key in ("read_timeout_s", "connect_timeout_s", "request_timeout_s", "fetch_timeout_s"):
        with pytest.raises(ConfigError, match=f"{key}: expected a positive, finite number"):
            check_config(HyperliquidConfig(**{key: float("nan")}))


def test_quoted_cuts_long_values() -> None:
    assert quoted("abc") == "'abc'"
    long = quoted("x" * 50_000_000)
    assert len(long) < 150 and long.endswith("... (50000000 characters)")


def _genesis(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "genesis_tui.cli", *args],
        capture_output=True, text=True, timeout=120, check=False, cwd=cwd,
    )


def _hostile_study_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b'name = "x"\n\xff\xfe\x00\x01' * 10)
    deep = tmp_path / "deep.toml"
    deep.write_text(STUDY.replace('name = "sma_cross"', 'name = "sma_cross"\nfixed = { x = ' + "[" * 2000 + "]" * 2000 + " }"))
    nan = tmp_path / "nan.toml"
    nan.write_text(STUDY + "[backtest]\nfee = nan\n")
    files = {
        "binary": (binary, "line 2: not UTF-8 text"),
        "deep": (deep, "nested deeper than 32 levels"),
        "nan": (nan, "backtest.fee: expected a finite number, got nan"),
    }
    if Path("/dev/zero").exists():
        zero = tmp_path / "zero.toml"
        os.symlink("/dev/zero", zero)
        files["zero"] = (zero, "larger than 1048576 bytes")
    return files


def test_hostile_study_files_exit_2_with_one_line(tmp_path: Path) -> None:
    for name, (path, expected) in _hostile_study_files(tmp_path).items():
        result = _genesis("run", str(path), "--headless", "--db", str(tmp_path / "s.db"), cwd=tmp_path)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (name, result.stderr[-2000:])
        assert len(lines) == 1 and str(path) in lines[0] and expected in lines[0], (name, lines)
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "s.db").exists()  # refused before anything was written
