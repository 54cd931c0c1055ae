"""A database that is down or whose disk is full (issue 16): the API answers 503 with
``Retry-After`` or 507, each with a sentence, and nothing of the refused request is
stored, so the agent's retry stores it once.

The failure is raised where the driver executes the insert of the report (an engine
event): the driver's own error class for each database, wrapped by SQLAlchemy as it
wraps the real one. The real thing (a PostgreSQL restart, a full file system under the
SQLite file) is in ``tests/e2e/test_backend_faults.py``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg.errors
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, event

from tests.backend.support import Caller, MakeRunningJob, bearer
from training_backend.db.faults import DATABASE_RETRY_AFTER_S


def _engine(app: FastAPI) -> Engine:
    engine: Engine = app.state.session_factory.kw["bind"]
    return engine


def _sqlite_error(message: str, code: int) -> sqlite3.Error:
    """The error as the sqlite3 module raises it, with its SQLite result code."""
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code
    return error


def _disk_full(engine: Engine) -> Exception:
    if engine.dialect.name == "sqlite":
        return _sqlite_error("database or disk is full", 13)  # SQLITE_FULL
    return psycopg.errors.DiskFull("could not extend file: No space left on device")


def _shut_down(engine: Engine) -> Exception:
    if engine.dialect.name == "sqlite":
        return _sqlite_error("disk I/O error", 10 | 3 << 8)  # SQLITE_IOERR_WRITE
    return psycopg.errors.AdminShutdown("terminating connection due to administrator command")


@contextmanager
def failing_writes(
    app: FastAPI, prefix: str, error: Callable[[Engine], Exception]
) -> Iterator[list[str]]:
    """Every statement that starts with ``prefix`` (``INSERT INTO job_logs``) raises
    ``error``; yields the statements refused."""
    engine = _engine(app)
    refused: list[str] = []

    def fail(*args: Any) -> None:
        statement = " ".join(str(args[2]).split())
        if statement.upper().startswith(prefix.upper()):
            refused.append(statement)
            raise error(engine)

    event.listen(engine, "before_cursor_execute", fail)
    try:
        yield refused
    finally:
        event.remove(engine, "before_cursor_execute", fail)


async def _logs(client: httpx.AsyncClient, job_id: str, caller: Caller) -> list[str]:
    url = f"/api/training/local/{job_id}/logs"
    answer = await client.get(url, params={"limit": 100}, headers=caller.headers())
    lines: list[str] = answer.json()["logs"]
    return lines


REPORTS = {
    "logs": "INSERT INTO job_logs",
    "metrics": "INSERT INTO training_metrics",
    "status": "UPDATE training_jobs SET status",
}


def _report(kind: str, job_id: str) -> tuple[str, str, dict[str, Any]]:
    """The method, path and body of one report of ``kind``."""
    if kind == "logs":
        return "POST", f"/api/training/local/{job_id}/logs", {"logs": ["a", "b"], "offset": 0}
    if kind == "metrics":
        point = {"step": 1, "epoch": 0.1, "train_loss": 1.0}
        return "POST", "/api/training/local/metrics", {"job_id": job_id, "metrics": [point]}
    return "PATCH", f"/api/training/local/{job_id}/status", {"status": "completed"}


async def _stored(client: httpx.AsyncClient, kind: str, job_id: str, caller: Caller) -> Any:
    if kind == "logs":
        return await _logs(client, job_id, caller)
    url = f"/api/training/local/{job_id}/{'metrics' if kind == 'metrics' else 'status'}"
    answer = (await client.get(url, headers=caller.headers())).json()
    return len(answer["metrics"]) if kind == "metrics" else answer["status"]


@pytest.mark.parametrize("kind", list(REPORTS))
async def test_a_full_disk_answers_507_and_stores_nothing(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_running_job: MakeRunningJob,
    caller: Caller,
    kind: str,
) -> None:
    job, token = make_running_job()
    method, url, body = _report(kind, job.id)
    before = await _stored(client, kind, job.id, caller)
    with failing_writes(app, REPORTS[kind], _disk_full) as refused:
        answer = await client.request(method, url, json=body, headers=bearer(token))
    assert refused, kind
    assert answer.status_code == 507
    assert answer.json() == {
        "code": "INSUFFICIENT_STORAGE",
        "error": "The server's disk is full, so nothing of this request was stored; "
        "it is accepted again once an administrator frees space",
    }
    assert await _stored(client, kind, job.id, caller) == before
    again = await client.request(method, url, json=body, headers=bearer(token))
    assert again.status_code == 200, again.text
    assert await _stored(client, kind, job.id, caller) != before


@pytest.mark.parametrize("table", ["training_metrics", "job_logs"])
async def test_a_database_going_away_answers_503_with_retry_after(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_running_job: MakeRunningJob,
    caller: Caller,
    table: str,
) -> None:
    job, token = make_running_job()
    if table == "job_logs":
        url, body = f"/api/training/local/{job.id}/logs", {"logs": ["a"], "offset": 0}
    else:
        url = "/api/training/local/metrics"
        body = {"job_id": job.id, "metrics": [{"step": 1, "epoch": 0.1, "train_loss": 1.0}]}
    with failing_writes(app, f"INSERT INTO {table}", _shut_down) as refused:
        answer = await client.post(url, json=body, headers=bearer(token))
    assert refused
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == str(DATABASE_RETRY_AFTER_S)
    assert answer.json() == {
        "code": "DATABASE_UNAVAILABLE",
        "error": "The server's database is unavailable, so nothing of this request was "
        f"stored; try again in {DATABASE_RETRY_AFTER_S} seconds",
    }
    again = await client.post(url, json=body, headers=bearer(token))
    assert again.status_code == 200, again.text


async def test_a_bad_query_is_still_a_500(
    app: FastAPI, client: httpx.AsyncClient, make_running_job: MakeRunningJob
) -> None:
    """Only what passes is retried: a syntax error is a bug, not a database outage."""
    job, token = make_running_job()

    def syntax_error(engine: Engine) -> Exception:
        if engine.dialect.name == "sqlite":
            return _sqlite_error('near "INSRT": syntax error', 1)  # SQLITE_ERROR
        return psycopg.errors.SyntaxError('syntax error at or near "INSRT"')

    url, body = f"/api/training/local/{job.id}/logs", {"logs": ["a"], "offset": 0}
    with failing_writes(app, "INSERT INTO job_logs", syntax_error):
        answer = await client.post(url, json=body, headers=bearer(token))
    assert answer.status_code == 500
    assert answer.json()["code"] == "INTERNAL_ERROR"
