"""Storage: every database connection Genesis opens goes through this package.

- :mod:`~engine.store.sqlite`: the SQLite connection policy (WAL, one busy
  timeout, never a descriptor of a database file outside SQLite).
- :mod:`~engine.store.schema`: the schema registry (``schema_versions``).
- :mod:`~engine.store.batching`: the study stores' write queue and writer task.
- :mod:`~engine.store.postgres`: the study store on PostgreSQL (the ``postgres`` extra).
- :mod:`~engine.store.url`: a store's location; PostgreSQL URLs shown redacted.
- :mod:`~engine.store.factory`: :func:`open_study_store`, PostgreSQL for a URL, SQLite otherwise.
"""

from __future__ import annotations
