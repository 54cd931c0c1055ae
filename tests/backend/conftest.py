"""An in-process backend on a fresh database per test, and factories for its rows.

Every test that uses the ``settings`` fixture (directly or through ``app``, ``client``,
``db``...) runs twice: on a SQLite file and on a PostgreSQL database of its own. The
PostgreSQL run needs ``TRAINING_BACKEND_TEST_POSTGRES_URL`` (``scripts/test`` starts a
throwaway server when PostgreSQL is installed); without it that variant skips, except
under ``CI=true``, where it fails.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher, profiles
from fastapi import FastAPI
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from tests.backend.support import AGENT_ID, Caller
from tests.support.backend import BackendProcess, start_backend
from training_backend.app import create_app
from training_backend.db import create_db_engine, upgrade_database
from training_backend.db.base import Base
from training_backend.db.models import TrainingJob, User
from training_backend.db.types import utcnow
from training_backend.security import generate_job_token, hash_secret
from training_backend.services import passwords
from training_backend.services.api_keys import create_api_key
from training_backend.services.users import create_user
from training_backend.settings import BackendSettings

#: Set to an admin URL (``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``) to run
#: these tests on PostgreSQL, each in a database of its own, instead of SQLite.
POSTGRES_ENV = "TRAINING_BACKEND_TEST_POSTGRES_URL"


_shared_databases: dict[str, str] = {}


def _create_database(admin_url: str) -> str:
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _emptied(url: str) -> str:
    engine = create_db_engine(url)
    try:
        upgrade_database(engine)
        tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
        with engine.begin() as connection:
            connection.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        engine.dispose()
    return url


@contextmanager
def _postgres_database(admin_url: str) -> Iterator[str]:
    """One database per test run, emptied before each test (creating one per test costs
    a fifth of a second each, which adds up to most of the suite)."""
    if admin_url not in _shared_databases:
        _shared_databases[admin_url] = _create_database(admin_url)
    yield _emptied(_shared_databases[admin_url])


@pytest.fixture(scope="session", autouse=True)
def _drop_postgres_databases() -> Iterator[None]:
    yield
    for admin_url, url in _shared_databases.items():
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                name = make_url(url).database
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            admin.dispose()
    _shared_databases.clear()


def postgres_admin_url() -> str:
    """The test server's admin URL; skips the test without one (fails it under ``CI=true``)."""
    admin_url = os.environ.get(POSTGRES_ENV)
    if admin_url:
        return admin_url
    message = f"no PostgreSQL server: set {POSTGRES_ENV} or install PostgreSQL"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI must run the PostgreSQL variants)")
    pytest.skip(message)


@contextmanager
def fresh_database_url(kind: str, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: a SQLite file in ``tmp_path``, or a new PostgreSQL one."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'backend.sqlite3'}"
        return
    with _postgres_database(postgres_admin_url()) as url:
        yield url


@pytest.fixture(autouse=True)
def cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Argon2 at its cheapest: the real code path, a thousandth of the cost."""
    monkeypatch.setattr(passwords, "HASHER", PasswordHasher.from_parameters(profiles.CHEAPEST))
    yield


@pytest.fixture(params=["sqlite", "postgresql"])
def database_kind(request: pytest.FixtureRequest) -> str:
    """Which database the test runs on (every backend test runs on both)."""
    kind: str = request.param
    return kind


@pytest.fixture
def settings(database_kind: str, tmp_path: Path) -> Iterator[BackendSettings]:
    """A fresh database of ``database_kind``, and settings pointing at it."""
    with fresh_database_url(database_kind, tmp_path) as url:
        yield BackendSettings(
            database_url=url,
            datasets_dir=tmp_path / "datasets",
            artifacts_dir=tmp_path / "artifacts",
        )


@pytest.fixture
def served_backend(database_kind: str, tmp_path: Path) -> Iterator[BackendProcess]:
    """A real ``training-backend serve`` process on a fresh database of ``database_kind``."""
    with (
        fresh_database_url(database_kind, tmp_path) as url,
        start_backend(tmp_path / "backend", database_url=url) as process,
    ):
        yield process


@pytest.fixture
async def app(settings: BackendSettings) -> AsyncIterator[FastAPI]:
    """The app, started (database migrated) and stopped around the test."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://backend.test") as http:
        yield http


@pytest.fixture
def db(app: FastAPI) -> Iterator[Session]:
    """A session on the test's database, separate from the app's request sessions."""
    with app.state.session_factory() as session:
        yield session


@pytest.fixture
def make_user(db: Session) -> Callable[..., User]:
    names = (f"user{n}" for n in itertools.count(1))

    def make(name: str | None = None) -> User:
        return create_user(db, name=name or next(names))

    return make


@pytest.fixture
def make_key(db: Session, make_user: Callable[..., User]) -> Callable[..., Caller]:
    def make(user: User | None = None, *, scopes: tuple[str, ...] = ("training",)) -> Caller:
        owner = user or make_user()
        _, key = create_api_key(db, user_id=owner.id, name="test key", scopes=scopes)
        return Caller(owner, key)

    return make


@pytest.fixture
def caller(make_key: Callable[..., Caller]) -> Caller:
    """A user with a ``training`` key."""
    return make_key()


@pytest.fixture
def make_job(db: Session, caller: Caller) -> Callable[..., TrainingJob]:
    """``make_job(**overrides)``: a pending job of ``caller`` with any column overridden."""

    def make(**overrides: Any) -> TrainingJob:
        now = utcnow()
        values: dict[str, Any] = {
            "user_id": caller.user.id,
            "status": "pending",
            "config": {"type": "command", "command": ["true"]},
            "model_name": "tiny-model",
            "dataset_path": "data/train.jsonl",
            "created_at": now,
            "updated_at": now,
        }
        job = TrainingJob(**(values | overrides))
        db.add(job)
        db.commit()
        return job

    return make


@pytest.fixture
def make_running_job(
    make_job: Callable[..., TrainingJob],
) -> Callable[..., tuple[TrainingJob, str]]:
    """``make_running_job(**overrides)``: a claimed job and its job token."""

    def make(**overrides: Any) -> tuple[TrainingJob, str]:
        token = generate_job_token()
        now = utcnow()
        values = {
            "status": "running",
            "agent_id": AGENT_ID,
            "claimed_at": now,
            "started_at": now,
            "job_token_hash": hash_secret(token),
        }
        return make_job(**(values | overrides)), token

    return make
