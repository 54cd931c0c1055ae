"""Held polls cost nothing while they wait, and each change wakes exactly the polls it
concerns: a submitted job one agent that can take it, a revocation or a cancel only the
agent or key in question, and a lost signal is made good by one re-check per process.

Most tests make the re-check interval an hour, so only the signal under test can end a
hold early: broken, the poll holds on until its time is up and the test sees ``null``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, update
from sqlalchemy.orm import Session

from tests.backend.support import AGENT_ID, Caller, MakeKey, MakeRunningJob
from training_backend.app import create_app
from training_backend.db.models import ApiKey
from training_backend.db.types import utcnow
from training_backend.services import recheck
from training_backend.services.sessions import create_session
from training_backend.services.wakeups import Signal, SignalKind, Wakeups
from training_backend.settings import BackendSettings

POLL = "/api/training/agent/poll"
JOBS = "/api/training/jobs"
OTHER_AGENT = "agent_fedcba9876543210"
WAITERS = 100


@pytest.fixture
def no_recheck(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(recheck, "RECHECK_SECONDS", 3600.0)
    yield


async def until_waiting(app: FastAPI, user_id: str, count: int = 1) -> None:
    wakeups: Wakeups = app.state.wakeups
    while wakeups.waiting(user_id) < count:
        await asyncio.sleep(0.01)


def hold(
    client: httpx.AsyncClient, caller: Caller, agent_id: str = AGENT_ID, wait: float = 30
) -> asyncio.Task[httpx.Response]:
    return asyncio.create_task(
        client.get(POLL, params={"wait_seconds": wait}, headers=caller.headers(agent_id))
    )


def session_headers(db: Session, caller: Caller) -> dict[str, str]:
    _, token = create_session(db, user_id=caller.user.id, now=utcnow(), lifetime=timedelta(hours=1))
    return {"Authorization": f"Bearer {token}"}


# The registry on its own.


def test_a_signal_survives_the_notification_payload() -> None:
    signal = Signal.job("u1", {"labels": ["a100"]})
    assert Signal.decode(signal.encode()) == signal
    assert Signal.decode(Signal.key("u1", "k1").encode()) == Signal.key("u1", "k1")
    assert Signal.decode("u1") == Signal(SignalKind.USER, "u1")  # an older backend's payload
    assert Signal.decode("{not json") is None


async def test_a_job_wakes_the_longest_waiting_idle_waiter_that_can_take_it() -> None:
    wakeups = Wakeups()
    wakeups.bind(asyncio.get_running_loop())
    gpu_only = wakeups.subscribe("u1", agent_id="a1", accepts=lambda r: r is not None)
    first = wakeups.subscribe("u1", agent_id="a2")
    second = wakeups.subscribe("u1", agent_id="a3")
    other_user = wakeups.subscribe("u2", agent_id="a4")
    assert None not in (gpu_only, first, second, other_user)

    wakeups.deliver(Signal.job("u1"))
    woken = [w for w in (gpu_only, first, second, other_user) if w and w.event.is_set()]
    assert woken == [first]
    wakeups.deliver(Signal.job("u1"))  # the first one is looking: the next one wakes
    woken = [w for w in (gpu_only, first, second, other_user) if w and w.event.is_set()]
    assert woken == [first, second]


async def test_a_revocation_wakes_only_the_agent_or_key_concerned() -> None:
    wakeups = Wakeups()
    wakeups.bind(asyncio.get_running_loop())
    mine = wakeups.subscribe("u1", agent_id="a1", key_id="k1")
    other = wakeups.subscribe("u1", agent_id="a2", key_id="k2")
    assert mine is not None and other is not None

    wakeups.deliver(Signal.agent("u1", "a1"))
    assert (mine.event.is_set(), other.event.is_set()) == (True, False)
    mine.event.clear()
    wakeups.deliver(Signal.key("u1", "k2"))
    assert (mine.event.is_set(), other.event.is_set()) == (False, True)


def test_a_key_holds_at_most_its_cap_of_polls() -> None:
    wakeups = Wakeups(max_per_key=2)
    held = [wakeups.subscribe("u1", agent_id=f"a{n}", key_id="k1") for n in range(3)]
    assert held[2] is None
    assert wakeups.subscribe("u1", agent_id="a9", key_id="k2") is not None  # another key
    assert held[0] is not None
    wakeups.unsubscribe(held[0])
    assert wakeups.subscribe("u1", agent_id="a3", key_id="k1") is not None


# The real app over HTTP.


async def test_held_polls_cost_no_database_work_per_poll(
    app: FastAPI,
    client: httpx.AsyncClient,
    caller: Caller,
    make_key: MakeKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(recheck, "RECHECK_SECONDS", 0.1)
    engine = app.state.session_factory.kw["bind"]
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    # A key per agent, as enrolled agents have (one key holds at most 16 polls).
    keys = [make_key(caller.user) for _ in range(WAITERS)]
    polls = [hold(client, key, f"agent_{n:010d}", wait=5) for n, key in enumerate(keys)]
    await until_waiting(app, caller.user.id, count=WAITERS)
    passes_before = app.state.recheck.passes
    event.listen(engine, "before_cursor_execute", count)
    try:
        await asyncio.sleep(1.0)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    passes = app.state.recheck.passes - passes_before
    app.state.wakeups.close()
    await asyncio.gather(*polls)

    # 100 polls held for a second: only the process's own re-check read the database,
    # three small questions a pass (and a connection check), however many polls wait.
    assert 1 <= passes <= 15
    assert len(statements) <= 5 * (passes + 1) < WAITERS, statements


@pytest.mark.usefixtures("no_recheck")
async def test_a_revoked_agents_held_poll_answers_403_at_once(
    app: FastAPI, client: httpx.AsyncClient, caller: Caller, db: Session
) -> None:
    revoked, bystander = hold(client, caller), hold(client, caller, OTHER_AGENT, wait=2)
    await until_waiting(app, caller.user.id, count=2)
    started = time.monotonic()
    gone = await client.delete(
        f"/api/training/agents/{AGENT_ID}", headers=session_headers(db, caller)
    )
    answer = await asyncio.wait_for(revoked, 10)

    assert gone.status_code == 200
    assert (answer.status_code, answer.json()["code"]) == (403, "AGENT_REVOKED")
    assert time.monotonic() - started < 5
    assert not bystander.done()  # the other agent's poll was not concerned
    assert (await bystander).json()["job"] is None


@pytest.mark.usefixtures("no_recheck")
async def test_a_revoked_keys_held_poll_answers_401_at_once(
    app: FastAPI, client: httpx.AsyncClient, caller: Caller, db: Session
) -> None:
    waiting = hold(client, caller)
    await until_waiting(app, caller.user.id)
    key_id = db.query(ApiKey.id).filter(ApiKey.user_id == caller.user.id).scalar()
    gone = await client.delete(f"/api/user/api-keys/{key_id}", headers=session_headers(db, caller))
    answer = await asyncio.wait_for(waiting, 10)
    assert gone.status_code == 200
    assert (answer.status_code, answer.json()["code"]) == (401, "INVALID_API_KEY")


async def test_a_key_revoked_by_another_process_is_refused_within_a_second(
    app: FastAPI, client: httpx.AsyncClient, caller: Caller, db: Session
) -> None:
    # No signal at all (another process on SQLite): the shared re-check notices it.
    waiting = hold(client, caller)
    await until_waiting(app, caller.user.id)
    db.execute(update(ApiKey).where(ApiKey.user_id == caller.user.id).values(revoked_at=utcnow()))
    db.commit()
    started = time.monotonic()
    answer = await asyncio.wait_for(waiting, 10)
    assert answer.status_code == 401
    assert time.monotonic() - started < 2.5


@pytest.mark.usefixtures("no_recheck")
async def test_a_cancel_wakes_the_held_poll_of_the_agent_running_the_job(
    app: FastAPI,
    client: httpx.AsyncClient,
    caller: Caller,
    make_running_job: MakeRunningJob,
) -> None:
    job, _ = make_running_job()
    runner, bystander = hold(client, caller), hold(client, caller, OTHER_AGENT, wait=2)
    await until_waiting(app, caller.user.id, count=2)
    cancelled = await client.post(
        f"/api/training/local/{job.id}/control",
        json={"action": "cancel"},
        headers=caller.headers(None),
    )
    answer = await asyncio.wait_for(runner, 10)
    assert cancelled.status_code == 200
    assert answer.json()["job"] is None
    assert not bystander.done()
    await bystander


@pytest.fixture
async def capped_app(settings: BackendSettings) -> AsyncIterator[FastAPI]:
    application = create_app(settings.model_copy(update={"max_long_polls_per_key": 2}))
    async with application.router.lifespan_context(application):
        yield application


@pytest.mark.usefixtures("no_recheck")
async def test_polls_beyond_the_keys_cap_are_answered_at_once(
    capped_app: FastAPI, caller: Caller
) -> None:
    transport = httpx.ASGITransport(app=capped_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://backend.test") as client:
        held = [hold(client, caller, f"agent_{n:010d}") for n in range(2)]
        await until_waiting(capped_app, caller.user.id, count=2)
        started = time.monotonic()
        third = await client.get(
            POLL, params={"wait_seconds": 30}, headers=caller.headers("agent_0000000099")
        )
        assert time.monotonic() - started < 5
        assert third.status_code == 200 and third.json()["job"] is None
        assert capped_app.state.wakeups.waiting() == 2
        capped_app.state.wakeups.close()
        await asyncio.gather(*held)
