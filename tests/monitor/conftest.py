"""Monitor fixtures: a real child process holding a known amount of memory."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

CHILD_MB = 80

_CHILD = f"""
import sys, time
block = b"x" * ({CHILD_MB} * 1024 * 1024)  # touched pages: resident
print("ready", flush=True)
sys.stdin.read()  # until the parent closes stdin
"""


@pytest.fixture
def child() -> Iterator[subprocess.Popen[str]]:
    """A python child process holding ~80 MB resident until the test ends."""
    process = subprocess.Popen(
        [sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        yield process
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
