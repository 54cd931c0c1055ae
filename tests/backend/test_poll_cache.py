"""The poll caches: a poll they can answer touches no database, and nothing they hold
outlives the change that makes it wrong (a job, a revocation), whether the change is
signalled or only found by the shared re-check (another process on SQLite)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import event, update
from sqlalchemy.orm import Session

from tests.backend.support import AGENT_ID, Caller, MakeJob
from training_backend.db.models import ApiKey, TrainingAgent
from training_backend.db.types import utcnow
from training_backend.services import poll_cache
from training_backend.services.agents import AgentIdentity, AgentSeen, needs_write
from training_backend.services.dispatch import MAX_WAIT_SECONDS
from training_backend.services.poll_cache import PollCache
from training_backend.services.wakeups import Signal

POLL = "/api/training/agent/poll"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def key_row(key_id: str, *, agent_id: str | None = None) -> ApiKey:
    return ApiKey(id=key_id, user_id="u1", scopes=["training"], agent_id=agent_id)


SEEN = AgentSeen("box", "linux", "0.2.0", "online", {}, utcnow())


def test_entries_expire_and_signals_forget_what_they_make_wrong() -> None:
    clock = Clock()
    cache = PollCache(clock=clock)
    cache.remember_key("h1", key_row("k1"))
    cache.remember_key("h2", key_row("k2", agent_id="agent_a"))
    cache.remember_agent("u1", "agent_a", SEEN)
    assert cache.key("h1") is not None and cache.agent("u1", "agent_a") == SEEN

    cache.apply(Signal.key("u1", "k1"))
    assert cache.key("h1") is None and cache.key("h2") is not None
    cache.apply(Signal.agent("u1", "agent_a"))  # and the key bound to it
    assert cache.key("h2") is None and cache.agent("u1", "agent_a") is None

    cache.remember_key("h1", key_row("k1"))
    cache.remember_idle("u1", "agent_a", "info", cache.version("u1"))
    clock.now += poll_cache.KEY_TTL_S - 1
    assert cache.key("h1") is not None and cache.is_idle("u1", "agent_a", "info")
    clock.now += 2
    assert cache.key("h1") is None and not cache.is_idle("u1", "agent_a", "info")
    cache.sweep()
    assert len(cache) == 0


def test_entries_outlast_two_holds_so_back_to_back_long_polls_skip_the_database() -> None:
    ttls = (poll_cache.KEY_TTL_S, poll_cache.AGENT_TTL_S, poll_cache.IDLE_TTL_S)
    assert min(ttls) > 2 * MAX_WAIT_SECONDS + 10


def test_idle_holds_until_a_job_of_the_user_becomes_available() -> None:
    cache = PollCache(clock=Clock())
    cache.remember_idle("u1", "agent_a", "info", cache.version("u1"))
    assert cache.is_idle("u1", "agent_a", "info")
    assert not cache.is_idle("u1", "agent_a", "other info")  # it says something else now
    cache.apply(Signal.job("u2"))
    assert cache.is_idle("u1", "agent_a", "info")
    cache.apply(Signal.job("u1"))
    assert not cache.is_idle("u1", "agent_a", "info")


def test_a_look_that_overlapped_a_job_is_not_remembered_as_idle() -> None:
    cache = PollCache(clock=Clock())
    version = cache.version("u1")  # the look begins
    cache.apply(Signal.job("u1"))  # a job is submitted while it runs
    cache.remember_idle("u1", "agent_a", "", version)  # the look found nothing
    assert not cache.is_idle("u1", "agent_a", "")


async def test_a_warm_plain_poll_touches_no_database(
    app: FastAPI, client: httpx.AsyncClient, caller: Caller
) -> None:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    engine = app.state.session_factory.kw["bind"]
    for _ in range(2):  # the first reads the key, writes the agent, looks for a job
        assert (await client.get(POLL, headers=caller.headers())).status_code == 200
    event.listen(engine, "before_cursor_execute", count)
    try:
        answers = [await client.get(POLL, headers=caller.headers()) for _ in range(5)]
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert [answer.json()["job"] for answer in answers] == [None] * 5
    assert [s for s in statements if "training_jobs" in s or "api_keys" in s] == []


async def test_a_job_submitted_here_is_offered_at_the_next_poll(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    for _ in range(2):
        await client.get(POLL, headers=caller.headers())
    job: dict[str, object] = {"config": {}}
    submitted = await client.post("/api/training/jobs", json=job, headers=caller.headers())
    answer = await client.get(POLL, headers=caller.headers())
    assert answer.json()["job"]["id"] == submitted.json()["job"]["id"]


async def poll_until(
    client: httpx.AsyncClient, caller: Caller, done: Callable[[httpx.Response], bool]
) -> float:
    """Seconds of polling until ``done(answer)``."""
    started = time.monotonic()
    while time.monotonic() - started < 10:
        if done(await client.get(POLL, headers=caller.headers())):
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError("the cache never let go")


def offered(job_id: str) -> Callable[[httpx.Response], bool]:
    return lambda answer: (answer.json()["job"] or {}).get("id") == job_id


async def test_a_job_from_another_process_is_offered_within_a_second(
    client: httpx.AsyncClient, caller: Caller, make_job: MakeJob
) -> None:
    for _ in range(2):
        await client.get(POLL, headers=caller.headers())
    job = make_job()  # written straight to the database: no signal (SQLite, another process)
    assert await poll_until(client, caller, offered(job.id)) < 2.5


async def test_a_key_revoked_by_another_process_is_refused_within_a_second(
    client: httpx.AsyncClient, caller: Caller, db: Session
) -> None:
    for _ in range(2):
        await client.get(POLL, headers=caller.headers())
    db.execute(update(ApiKey).where(ApiKey.user_id == caller.user.id).values(revoked_at=utcnow()))
    db.commit()
    assert await poll_until(client, caller, lambda answer: answer.status_code == 401) < 2.5


async def test_an_agent_revoked_by_another_process_is_refused_within_a_second(
    client: httpx.AsyncClient, caller: Caller, db: Session
) -> None:
    for _ in range(2):
        await client.get(POLL, headers=caller.headers())
    revoked_at = utcnow() - timedelta(milliseconds=1)
    db.execute(
        update(TrainingAgent)
        .where(TrainingAgent.agent_id == AGENT_ID)
        .values(revoked_at=revoked_at)
    )
    db.commit()
    assert await poll_until(client, caller, lambda answer: answer.status_code == 403) < 2.5


def test_a_poll_needs_a_write_only_for_news_or_an_old_last_poll() -> None:
    now = utcnow()
    seen = AgentSeen("box", "linux", "0.2.0", "online", {"info": {"cpu_count": 8}}, now)
    same = AgentIdentity("agent_a1b2c3d4", "box", "linux", "0.2.0", {"cpu_count": 8})
    window = timedelta(seconds=10)
    assert not needs_write(seen, same, now=now + timedelta(seconds=9), coalesce=window)
    assert not needs_write(seen, AgentIdentity("agent_a1b2c3d4"), now=now, coalesce=window)
    news = [
        replace(same, hostname="other"),
        replace(same, version="0.3.0"),
        replace(same, platform="darwin"),
        replace(same, platform="plan9"),  # stored as null: a change from linux
        replace(same, info={"cpu_count": 4}),
        replace(same, current_jobs=("j1",)),
    ]
    assert [needs_write(seen, agent, now=now, coalesce=window) for agent in news] == [True] * 6
    assert needs_write(seen, same, now=now + window, coalesce=window)
    assert needs_write(seen, same, now=now - timedelta(seconds=1), coalesce=window)
    assert needs_write(None, same, now=now, coalesce=window)
    assert needs_write(replace(seen, status="offline"), same, now=now, coalesce=window)
