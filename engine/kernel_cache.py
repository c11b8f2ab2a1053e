"""Where numba keeps the compiled kernels: one folder per version of the kernels' sources.

numba's disk cache checks only the modification time of the file a function is
defined in, not of the functions it calls or the constants it reads from other
modules: after an update of ``engine/backtest/nb.py`` the basket kernels of
``basket_nb.py`` (and a user's strategy calling ``ta``) would load machine code
with the old metrics inlined. So the cache lives in
``<cache>/numba/<hash of every kernel package's source>``: any change to them is
a fresh folder. A ``NUMBA_CACHE_DIR`` the user set is left alone.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from engine.paths import cache_dir

#: The packages whose modules are compiled by numba or inlined into compiled code.
KERNEL_PACKAGES = ("backtest", "strategy", "analysis")


def sources_hash() -> str:
    """A short sha256 of every module of :data:`KERNEL_PACKAGES` (names and contents)."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for package in KERNEL_PACKAGES:
        for path in sorted((root / package).glob("*.py")):
            digest.update(f"{package}/{path.name}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def configure() -> str | None:
    """Point numba's cache at this version's folder (inherited by worker processes);
    the folder, or ``None`` when the user chose one with ``NUMBA_CACHE_DIR``."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    folder = str(cache_dir() / "numba" / sources_hash())
    os.environ["NUMBA_CACHE_DIR"] = folder
    config = sys.modules.get("numba.core.config")
    if config is not None:  # numba imported before the engine: its config has read the environment already
        config.CACHE_DIR = folder  # type: ignore[attr-defined]
    return folder
