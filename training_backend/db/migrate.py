"""Bring a database up to the newest schema with the migrations shipped in the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, text

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Any constant works; it names the lock that serialises migrations on PostgreSQL.
_PG_MIGRATION_LOCK = 726_151_001


def alembic_config(connection: Connection) -> Config:
    """An Alembic config built in code: works from a wheel and from any directory."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _lock(connection: Connection) -> None:
    # Two processes starting on a fresh database must not both create the tables: the
    # second waits here, then finds the schema current.
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})


def upgrade_database(engine: Engine) -> None:
    """Apply every migration not yet applied (a no-op on a current database)."""
    with engine.connect() as connection:
        _lock(connection)
        command.upgrade(alembic_config(connection), "head")
        connection.commit()
