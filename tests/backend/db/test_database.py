"""The schema: migrations match the models, run idempotently, and SQLite is set up right."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from training_backend.db import create_db_engine, upgrade_database
from training_backend.db.base import Base
from training_backend.db.engine import SQLITE_BUSY_TIMEOUT_MS


def test_migrations_build_exactly_the_models_schema(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        upgrade_database(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_upgrading_twice_is_a_no_op(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        upgrade_database(engine)
        upgrade_database(engine)
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    expected = {"users", "sessions", "api_keys", "training_jobs", "training_metrics", "job_logs"}
    expected |= {"datasets", "enrollment_tokens", "training_metric_series"}
    expected |= {"artifacts"}
    expected |= {"sign_in_links"}
    expected |= {"rate_limit_buckets"}
    assert expected | {"training_agents", "alembic_version"} == tables


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'db.sqlite3'}")
    try:
        with engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS
            assert pragma("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_migrations_run_from_any_working_directory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    code = (
        "from training_backend.db import create_db_engine, upgrade_database;"
        f"upgrade_database(create_db_engine({url!r}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
