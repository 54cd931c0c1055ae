"""What a database error says about the database: unreachable for now, or out of disk.

Both mean the request's transaction was not committed: the API answers 503 (with
``Retry-After``) or 507 and the client sends the request again (``errors.py``).

    >>> import sqlite3
    >>> from sqlalchemy.exc import OperationalError
    >>> full = sqlite3.OperationalError("database or disk is full")
    >>> is_disk_full(OperationalError("INSERT", {}, full))
    True
"""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError, OperationalError

#: The ``Retry-After`` (seconds) of a 503 while the database cannot be reached: about what
#: a PostgreSQL restart or a fail-over takes.
DATABASE_RETRY_AFTER_S = 5

_SQLITE_FULL = 13  # SQLITE_FULL: "database or disk is full"
# SQLITE_BUSY, SQLITE_LOCKED (past the busy timeout), SQLITE_IOERR (a read or write the
# file system refused), SQLITE_CANTOPEN; a syntax error is a bug and stays a 500.
_SQLITE_PASSING = {5, 6, 10, 14}
_PG_DISK_FULL = "53100"  # disk_full


def is_disk_full(exc: DBAPIError) -> bool:
    """True when the database could not write because its disk (or quota) is full."""
    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        return _sqlite_code(orig) == _SQLITE_FULL or "disk is full" in str(orig)
    return getattr(orig, "sqlstate", None) == _PG_DISK_FULL


def is_unavailable(exc: DBAPIError) -> bool:
    """True when the database cannot serve the request now but may in a moment: the server
    is down or restarting, the connection was cut, it is locked or out of resources."""
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        return _sqlite_code(orig) in _SQLITE_PASSING
    # PostgreSQL (psycopg): OperationalError is the server gone, shutting down or starting,
    # a cut connection, a lock or statement timeout, out of resources; not a bad query.
    return isinstance(exc, OperationalError)


def _sqlite_code(error: sqlite3.Error) -> int:
    """The primary result code (``sqlite_errorcode`` is the extended one)."""
    return int(getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF
