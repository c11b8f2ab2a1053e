"""Storage: every database connection Genesis opens goes through this package.

- :mod:`~engine.store.sqlite`: the SQLite connection policy (WAL, one busy
  timeout, never a descriptor of a database file outside SQLite).
- :mod:`~engine.store.schema`: the schema registry (``schema_versions``).
- :mod:`~engine.store.records`: the immutable study and trial records the study stores read and write.
- :mod:`~engine.store.artifacts`: a trial's arrays encoded for storage (zlib, never pickle).
- :mod:`~engine.store.batching`: the study stores' write queue and writer task.
- :mod:`~engine.store.study_sqlite`: the study store in a SQLite file (the embedded default).
- :mod:`~engine.store.postgres`: the study store on PostgreSQL (the ``postgres`` extra).
- :mod:`~engine.store.run_history`: one row per headless run; ``--rerun`` archiving of a study.
- :mod:`~engine.store.alerts`: alert raises and clears.
- :mod:`~engine.store.url`: a store's location; PostgreSQL URLs shown redacted.
- :mod:`~engine.store.factory`: :func:`open_study_store`, PostgreSQL for a URL, SQLite otherwise.
"""

from __future__ import annotations
