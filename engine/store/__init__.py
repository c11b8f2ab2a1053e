"""Storage: every database connection Genesis opens goes through this package.

- :mod:`~engine.store.sqlite`: the SQLite connection policy (WAL, one busy
  timeout, never a descriptor of a database file outside SQLite).
"""

from __future__ import annotations
