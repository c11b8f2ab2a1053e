"""A throwaway PostgreSQL cluster for tests and benchmarks: initdb + pg_ctl in a temporary folder.

The cluster runs as the ``postgres`` system user when this process is root
(PostgreSQL refuses to run as root), listens on 127.0.0.1 on a free port,
trusts local connections except for one role that must give a password (the
redaction tests use it), and is removed when stopped.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path

PASSWORD_ROLE = "genesis_pw"
PASSWORD = "s3cret-Pw-9f2c"  # distinctive, so a grep for it finds every leak


class ServerUnavailable(RuntimeError):
    """The machine cannot run a local PostgreSQL server (the message says what is missing)."""


def find_binary(name: str) -> str | None:
    """``name`` on PATH, else the newest ``/usr/lib/postgresql/*/bin/name``."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalServer:
    """A running cluster: ``url(database)`` connects as the superuser (trust)."""

    root: Path
    port: int
    pg_ctl: str
    runas: list[str]

    def url(self, database: str = "postgres", *, user: str = "postgres", password: str | None = None) -> str:
        auth = user if password is None else f"{user}:{password}"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its folder."""
        with contextlib.suppress(Exception):
            subprocess.run([*self.runas, self.pg_ctl, "-D", str(self.root / "data"), "-m", "fast", "-w", "stop"],
                           capture_output=True, timeout=60, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def start(*, fast: bool = True) -> LocalServer:
    """Start a cluster; ``fast`` turns fsync off (tests), else the server's durable defaults (benchmarks)."""
    initdb, pg_ctl = find_binary("initdb"), find_binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise ServerUnavailable(
            "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under /usr/lib/postgresql/*/bin: "
            "install them (apt-get install -y postgresql) or set GENESIS_TEST_POSTGRES_URL"
        )
    runas: list[str] = []
    owner = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the postgres system user
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise ServerUnavailable("running as root and there is no 'postgres' system user to run the server; "
                                    "create one or set GENESIS_TEST_POSTGRES_URL") from None
        runuser = shutil.which("runuser") or shutil.which("setpriv")
        if runuser is None:
            raise ServerUnavailable("running as root without runuser or setpriv to start PostgreSQL as 'postgres'")
        runas = ([runuser, "-u", "postgres", "--"] if runuser.endswith("runuser")
                 else [runuser, f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}", "--init-groups"])
    # Not under pytest's tmp folders: those are 0700 to root, and the server runs as another user.
    root = Path(tempfile.mkdtemp(prefix="genesis-pg-", dir="/tmp"))
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    data = root / "data"
    port = _free_port()
    server = LocalServer(root, port, pg_ctl, runas)
    try:
        _run([*runas, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8",
              "--locale=C"], "initdb")
        hba = data / "pg_hba.conf"
        hba.write_text(
            "local all all trust\n"
            f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n"
        )
        settings = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c max_connections=200"
        if fast:
            settings += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        _run([*runas, pg_ctl, "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60", "-o", settings,
              "start"], "pg_ctl start", log=root / "server.log")
        psql = find_binary("psql")
        if psql is not None:
            _run([*runas, psql, "-h", str(root), "-p", str(port), "-U", "postgres", "-d", "postgres", "-v",
                  "ON_ERROR_STOP=1", "-c", f"CREATE ROLE {PASSWORD_ROLE} LOGIN SUPERUSER PASSWORD '{PASSWORD}'"],
                 "psql create role")
    except BaseException:
        server.stop()
        raise
    return server


def _run(command: list[str], what: str, log: Path | None = None) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        if log is not None and log.exists():
            detail += log.read_text(errors="replace").strip().splitlines()[-5:]
        raise ServerUnavailable(f"{what} failed (exit {done.returncode}): {' | '.join(detail)}")


@dataclass
class ExternalServer:
    """A server given by ``GENESIS_TEST_POSTGRES_URL`` (a superuser's URL): tests only add schemas to it."""

    base: str

    def url(self, database: str | None = None, *, user: str | None = None, password: str | None = None) -> str:
        if database is None and user is None:
            return self.base
        parts = urllib.parse.urlsplit(self.base)
        host = parts.hostname or "localhost"
        netloc = f"{user or parts.username or 'postgres'}{':' + password if password else ''}@{host}"
        netloc += f":{parts.port}" if parts.port else ""
        return urllib.parse.urlunsplit((parts.scheme, netloc, f"/{database or parts.path.strip('/')}", "", ""))


def with_search_path(url: str, schema: str) -> str:
    """``url`` with ``?search_path=schema`` (asyncpg passes unknown query keys as server settings)."""
    parts = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k != "search_path"]
    query.append(("search_path", schema))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


async def _execute(url: str, sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def new_schema(url: str) -> str:
    """Create a schema of a fresh name and return the name."""
    import asyncio

    name = f"t_{uuid.uuid4().hex[:16]}"
    asyncio.run(_execute(url, f'CREATE SCHEMA "{name}"'))
    return name


def drop_schema(url: str, name: str) -> None:
    """Drop a schema made by :func:`new_schema` and everything in it."""
    import asyncio

    with contextlib.suppress(Exception):
        asyncio.run(_execute(url, f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
