"""Engines and sessions for SQLite (default) and PostgreSQL, from one URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 10_000


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # Set on every new connection: these pragmas are per connection (WAL is persistent,
    # but setting it again is cheap and covers a file created by someone else).
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _ensure_sqlite_directory(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


class DatabaseUrlError(ValueError):
    """The database URL is malformed or names a database whose driver is not installed."""


def create_db_engine(url: str, *, pool_size: int | None = None) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys.

    ``pool_size`` (PostgreSQL) replaces the default pool of 5 (+10 overflow).
    """
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite":
            sized = {} if pool_size is None else {"pool_size": pool_size, "max_overflow": 0}
            return create_engine(parsed, pool_pre_ping=True, **sized)
    except (ArgumentError, ImportError) as exc:
        raise DatabaseUrlError(f"cannot use database URL {_shown(url)}: {exc}") from exc
    _ensure_sqlite_directory(url)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    event.listen(engine, "connect", _configure_sqlite)
    return engine


def create_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded rows usable after commit (routes return them)."""
    return sessionmaker(engine, expire_on_commit=False)


def _shown(url: str) -> str:
    try:
        return repr(make_url(url).render_as_string(hide_password=True))
    except ArgumentError:
        return "(malformed)"
