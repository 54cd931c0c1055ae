"""Long polls: held until a job turns up (woken by a signal, or found by the process's
shared re-check), never holding a connection while they wait, and ended with ``null``
when time is up.

The wake-up tests make the re-check interval an hour, so only the wake-up path under
test can deliver the job before the hold ends: broken, the poll answers ``null``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from tests.backend.support import Caller, MakeJob, MakeKey
from tests.support.backend import BackendProcess
from training_backend.db import create_session_factory
from training_backend.db.types import utcnow
from training_backend.services import recheck
from training_backend.services import wakeups as wakeups_module
from training_backend.services.dispatch import MAX_WAIT_SECONDS, clamp_wait
from training_backend.services.jobs import create_job
from training_backend.services.wakeups import Wakeups

POLL = "/api/training/agent/poll"
JOBS = "/api/training/jobs"


@pytest.fixture
def no_recheck(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(recheck, "RECHECK_SECONDS", 3600.0)
    yield


async def until_waiting(app: FastAPI, user_id: str, count: int = 1) -> None:
    wakeups: Wakeups = app.state.wakeups
    while wakeups.waiting(user_id) < count:
        await asyncio.sleep(0.01)


def test_wait_is_clamped_to_thirty_seconds() -> None:
    assert clamp_wait(None) == 0.0
    assert clamp_wait(-5) == 0.0
    assert clamp_wait(12.5) == 12.5
    assert clamp_wait(1000) == MAX_WAIT_SECONDS == 30.0


async def test_a_bad_wait_is_400(client: httpx.AsyncClient, caller: Caller) -> None:
    for value in ("soon", "nan", "inf"):
        answer = await client.get(POLL, params={"wait_seconds": value}, headers=caller.headers())
        assert answer.status_code == 400, value
        assert answer.json()["code"] == "INVALID_REQUEST"


async def test_a_waiting_job_is_answered_at_once(
    client: httpx.AsyncClient, caller: Caller, make_job: MakeJob
) -> None:
    job = make_job()
    answer = await client.get(POLL, params={"wait_seconds": 30}, headers=caller.headers())
    assert answer.json()["job"]["id"] == job.id


@pytest.mark.usefixtures("no_recheck")
async def test_a_submitted_job_wakes_the_waiting_poll(
    app: FastAPI, client: httpx.AsyncClient, caller: Caller
) -> None:
    waiting = asyncio.create_task(
        client.get(POLL, params={"wait_seconds": 30}, headers=caller.headers())
    )
    await until_waiting(app, caller.user.id)
    submitted = await client.post(JOBS, json={"config": {}}, headers=caller.headers(None))
    answer = await asyncio.wait_for(waiting, 20)

    assert submitted.status_code == 201
    assert answer.json()["job"]["id"] == submitted.json()["job"]["id"]
    assert app.state.wakeups.waiting() == 0


@pytest.mark.usefixtures("no_recheck")
async def test_another_users_job_does_not_end_the_wait(
    app: FastAPI, client: httpx.AsyncClient, caller: Caller, make_key: MakeKey
) -> None:
    other = make_key()
    waiting = asyncio.create_task(
        client.get(POLL, params={"wait_seconds": 0.5}, headers=caller.headers())
    )
    await until_waiting(app, caller.user.id)
    await client.post(JOBS, json={"config": {}}, headers=other.headers(None))
    answer = await waiting
    assert answer.json()["job"] is None
    assert answer.json()["message"] == "No pending jobs available"


async def test_a_job_nobody_announced_is_found_by_the_recheck(
    app: FastAPI,
    client: httpx.AsyncClient,
    caller: Caller,
    make_job: MakeJob,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As if another process on SQLite (no notifications) submitted it.
    monkeypatch.setattr(recheck, "RECHECK_SECONDS", 0.05)
    waiting = asyncio.create_task(
        client.get(POLL, params={"wait_seconds": 30}, headers=caller.headers())
    )
    await until_waiting(app, caller.user.id)
    job = make_job()
    answer = await asyncio.wait_for(waiting, 20)
    assert answer.json()["job"]["id"] == job.id


@pytest.mark.usefixtures("no_recheck")
@pytest.mark.parametrize("database_kind", ["postgresql"])  # LISTEN/NOTIFY is PostgreSQL's
async def test_a_notification_from_another_process_wakes_the_poll(
    app: FastAPI, client: httpx.AsyncClient, caller: Caller
) -> None:
    await asyncio.wait_for(app.state.notifications_listening.wait(), 20)
    waiting = asyncio.create_task(
        client.get(POLL, params={"wait_seconds": 30}, headers=caller.headers())
    )
    await until_waiting(app, caller.user.id)
    # Another backend process: its own engine, its own name in what it sends, and no
    # access to this one's Wakeups.
    url = app.state.session_factory.kw["bind"].url
    engine = create_engine(url)
    try:
        with pytest.MonkeyPatch.context() as patch, Session(engine) as other_process:
            patch.setattr(wakeups_module, "_PROCESS_TOKEN", "another-process")
            job = create_job(other_process, user_id=caller.user.id, config={}, now=utcnow())
            job_id = job.id
    finally:
        engine.dispose()
    answer = await asyncio.wait_for(waiting, 20)
    assert answer.json()["job"]["id"] == job_id


@pytest.fixture
async def one_connection(app: FastAPI) -> AsyncIterator[None]:
    url = app.state.session_factory.kw["bind"].url
    engine = create_engine(url, poolclass=QueuePool, pool_size=1, max_overflow=0, pool_timeout=5)
    saved = app.state.session_factory
    app.state.session_factory = create_session_factory(engine)
    try:
        yield
    finally:
        app.state.session_factory = saved
        engine.dispose()


@pytest.mark.usefixtures("no_recheck", "one_connection")
async def test_waiting_polls_hold_no_connection(
    app: FastAPI, client: httpx.AsyncClient, caller: Caller
) -> None:
    waiting = [
        asyncio.create_task(
            client.get(POLL, params={"wait_seconds": 3}, headers=caller.headers(f"agent_{n:08d}"))
        )
        for n in range(10)
    ]
    await until_waiting(app, caller.user.id, count=10)
    # With one pooled connection, this only works if no waiter holds it.
    submitted = await client.post(JOBS, json={"config": {}}, headers=caller.headers(None))
    answers = await asyncio.wait_for(asyncio.gather(*waiting), 20)

    assert submitted.status_code == 201
    job_id = submitted.json()["job"]["id"]
    # One job wakes one waiter; the nine others hold on until their time is up.
    offered = sorted(str(answer.json()["job"] and answer.json()["job"]["id"]) for answer in answers)
    assert offered == sorted([job_id] + ["None"] * 9)


async def test_a_rejected_poll_leaves_no_waiter(
    app: FastAPI, client: httpx.AsyncClient, caller: Caller
) -> None:
    answer = await client.get(
        POLL, params={"wait_seconds": 30}, headers=caller.headers("not-an-agent")
    )
    assert answer.status_code == 400
    assert app.state.wakeups.waiting() == 0


async def test_a_long_poll_across_processes_gets_a_job_submitted_by_the_cli(
    served_backend: BackendProcess, tmp_path: Path
) -> None:
    # The CLI is another process: on PostgreSQL its NOTIFY wakes the server's waiter, on
    # SQLite the waiter's re-check finds the job.
    backend = served_backend
    backend.cli("users", "create", "waiter")
    key = backend.cli("keys", "create", "--user", "waiter").strip().splitlines()[-1]
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({"config": {}}))
    headers = {"Authorization": f"Bearer {key}", "X-Agent-ID": "agent_waiter0001"}
    async with httpx.AsyncClient(base_url=backend.url, timeout=60) as http:
        waiting = asyncio.create_task(http.get(POLL, params={"wait_seconds": 30}, headers=headers))
        await asyncio.sleep(0.3)  # let the poll reach the server and start waiting
        job_id = backend.cli("jobs", "submit", "--user", "waiter", "--file", str(job_file))
        answer = await waiting
    assert answer.json()["job"]["id"] == job_id.strip()
