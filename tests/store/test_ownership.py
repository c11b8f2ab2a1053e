"""One owner for storage: no module outside ``engine/store/`` opens a database or holds SQL text.

The check reads the source (``ast``): imports of database drivers, and SQL
statements inside string literals (f-strings included, docstrings excepted).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("engine", "genesis_tui")
OWNER = Path("engine") / "store"

DRIVERS = {"sqlite3", "aiosqlite", "asyncpg", "psycopg", "psycopg2", "sqlalchemy", "apsw", "duckdb"}

# Upper-case keywords only: SQL in this code base is written that way, and prose
# ("select a study from the list") is not SQL.
SQL = re.compile(
    r"\bSELECT\b[\s\S]*\bFROM\b"
    r"|^\s*SELECT\b"
    r"|\bINSERT\s+(?:OR\s+[A-Z]+\s+)?INTO\b"
    r"|\bUPDATE\s+\S+\s+SET\b"
    r"|\bDELETE\s+FROM\b"
    r"|\b(?:CREATE|DROP)\s+(?:UNIQUE\s+)?(?:TABLE|INDEX|VIEW|TRIGGER)\b"
    r"|\bALTER\s+TABLE\b"
    r"|\bPRAGMA\s+[a-z_]"
    r"|^\s*(?:BEGIN|COMMIT|ROLLBACK|VACUUM|SAVEPOINT)\b"
)


def _docstrings(tree: ast.AST) -> set[int]:
    """``id`` of every docstring node (module, class and function docstrings are prose)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _text(node: ast.AST) -> str | None:
    """A string literal's text; an f-string's with ``{}`` where its values go."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(str(v.value) if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def findings(source: str, name: str) -> list[str]:
    """``name:line: why`` for every driver import and SQL string in ``source``."""
    tree = ast.parse(source, filename=name)
    skip = _docstrings(tree)
    inner: set[int] = set()  # the literal parts of f-strings, checked with their f-string
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for module in modules:
                if module.split(".")[0] in DRIVERS:
                    out.append((node.lineno, f"imports {module}"))
        if isinstance(node, ast.JoinedStr):
            inner.update(id(v) for v in node.values)
    for node in ast.walk(tree):
        if id(node) in skip or id(node) in inner:
            continue
        text = _text(node)
        if text is not None:
            match = SQL.search(text)
            if match:
                out.append((getattr(node, "lineno", 0), f"SQL text {match.group(0).strip()[:40]!r}"))
    return [f"{name}:{line}: {why}" for line, why in sorted(out)]


def scan(root: Path) -> list[str]:
    """Every finding in the scanned packages of the checkout at ``root``, outside the storage package."""
    out: list[str] = []
    for package in SCANNED:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root)
            if relative.is_relative_to(OWNER):
                continue
            out.extend(findings(path.read_text(encoding="utf-8"), str(relative)))
    return out


def test_no_sql_outside_store() -> None:
    found = scan(ROOT)
    assert not found, "database access outside engine/store/:\n" + "\n".join(found)


def test_the_check_sees_imports_sql_and_f_strings() -> None:
    """What the scan must catch (a wrong check passes the test above trivially)."""
    source = '''
"""A docstring may say SELECT x FROM y."""
import sqlite3
from aiosqlite import connect
import asyncpg.pool

def f(cols, conn):
    """So may this one: DELETE FROM trials."""
    conn.execute(f"SELECT {cols} FROM trials WHERE id = ?")
    conn.execute("UPDATE studies SET name = ? WHERE id = ?")
    conn.execute("INSERT OR IGNORE INTO trials VALUES (?)")
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(f"PRAGMA table_info({cols})")
    sql = "CREATE TABLE IF NOT EXISTS t (x)"
    note = "select the study from the list"
'''
    found = findings(source, "m.py")
    assert [line.split(":")[1] for line in found] == ["3", "4", "5", "9", "10", "11", "12", "13", "14"], found
    assert all("docstring" not in line for line in found)


def test_the_check_passes_clean_code() -> None:
    source = '''
"""Reads trials through the store."""
from engine.store.factory import open_study_store

def f():
    return "Selected 3 trials from the study; update the settings and begin again"
'''
    assert findings(source, "clean.py") == []
