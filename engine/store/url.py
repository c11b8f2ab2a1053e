"""Where a study store lives: a SQLite file path, or a PostgreSQL URL whose password is never shown.

``--db`` and ``[execution] db`` take either. A URL becomes a
:class:`DatabaseUrl`, whose ``str()`` and ``repr()`` are :func:`redacted`, so
printing a store's location anywhere (logs, reports, summaries, errors) cannot
leak the password; only :attr:`DatabaseUrl.dsn` holds it, for the driver.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

SCHEMES = ("postgresql", "postgres")

_URL = re.compile(r"^(postgres(?:ql)?)://", re.IGNORECASE)
# user:password@ in the authority part (the password may hold anything but '@' and '/').
_PASSWORD = re.compile(r"(?P<head>postgres(?:ql)?://[^:/@?#]*):(?P<password>[^@/]*)@", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)[^&#]*", re.IGNORECASE)


def is_database_url(db: object) -> bool:
    """``postgresql://...`` or ``postgres://...`` (a :class:`DatabaseUrl` too)."""
    return isinstance(db, DatabaseUrl) or (isinstance(db, str) and _URL.match(db) is not None)


def redacted(url: str) -> str:
    """``url`` with any password (``user:PASSWORD@`` or ``?password=``) replaced by ``***``."""
    text = _PASSWORD.sub(lambda m: f"{m.group('head')}:***@", str(url))
    return _QUERY_PASSWORD.sub(lambda m: f"{m.group('head')}***", text)


def scrub(text: str, url: str) -> str:
    """``text`` (a driver's error message, say) with ``url``'s password removed wherever it appears."""
    text = text.replace(url, redacted(url))
    match = _PASSWORD.match(url)
    secrets = {password_of(url), match.group("password") if match else None} - {None, ""}
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def password_of(url: str) -> str | None:
    """The password written in ``url``, if any (decoded)."""
    match = _PASSWORD.match(url)
    if match is not None and match.group("password"):
        return urllib.parse.unquote(match.group("password"))
    query = urllib.parse.urlsplit(url).query
    values = urllib.parse.parse_qs(query).get("password")
    return values[0] if values else None


@dataclass(frozen=True, slots=True)
class DatabaseUrl:
    """A PostgreSQL URL: ``str()``/``repr()`` show it redacted; :attr:`dsn` is the secret form."""

    dsn: str = field(repr=False)

    def __post_init__(self) -> None:
        if not _URL.match(self.dsn):
            raise ValueError(f"not a PostgreSQL URL: {redacted(self.dsn)}")

    def __str__(self) -> str:
        return redacted(self.dsn)

    def __repr__(self) -> str:
        return f"DatabaseUrl({redacted(self.dsn)!r})"

    @property
    def name(self) -> str:
        """The database's name (the URL's path), for labels such as a workspace's."""
        path = urllib.parse.urlsplit(self.dsn).path.strip("/")
        return path or "postgres"


StoreLocation = Path | DatabaseUrl


def store_location(db: str | Path | DatabaseUrl) -> StoreLocation:
    """A URL as a :class:`DatabaseUrl`, anything else as a ``Path`` (never a URL turned into a path)."""
    if isinstance(db, DatabaseUrl):
        return db
    if isinstance(db, str) and is_database_url(db):
        return DatabaseUrl(db)
    return Path(db)
