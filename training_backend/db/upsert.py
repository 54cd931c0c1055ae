"""``INSERT … ON CONFLICT`` for the two databases we run on, behind one function."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_for(session: Session, table: Any) -> Any:
    """An ``insert(table)`` of the session's dialect, which offers ``on_conflict_do_*``.

    Both dialects spell the upsert the same way (``index_elements``, ``set_``,
    ``stmt.excluded``), so callers need not know which one they got.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect: {dialect}")
