"""An agent's "still here" row writes (``services.agent_refreshes``): queued by the poll,
written together about once a second, never bringing back a revoked or forgotten row."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, event, select
from sqlalchemy.orm import Session

from tests.backend.support import AGENT_ID, Caller
from training_backend.app import create_app
from training_backend.db.models import TrainingAgent
from training_backend.db.types import utcnow
from training_backend.services.agent_refreshes import AgentRefreshes
from training_backend.services.agents import AgentIdentity, record_poll, revoke_agent
from training_backend.settings import BackendSettings

POLL = "/api/training/agent/poll"
OTHER = "agent_00000000000000aa"


def stored(db: Session, agent_id: str = AGENT_ID) -> TrainingAgent | None:
    db.expire_all()
    return db.scalar(select(TrainingAgent).where(TrainingAgent.agent_id == agent_id))


@contextlib.contextmanager
def sql_of(app: FastAPI) -> Iterator[list[str]]:
    """The SQL statements the app's engine runs within the block."""
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    engine = app.state.session_factory.kw["bind"]
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_queued_refreshes_merge_to_the_latest_and_the_longest_connection() -> None:
    now = utcnow()
    refreshes = AgentRefreshes()
    later, until = now + timedelta(seconds=5), now + timedelta(seconds=60)
    refreshes.queue("u1", "a", last_poll_at=later, connected_until=until)
    refreshes.queue("u1", "a", last_poll_at=now, connected_until=None)  # older, no hold
    refreshes.queue("u1", "b", last_poll_at=now, connected_until=None)
    assert len(refreshes) == 2
    taken = refreshes._take()
    assert (taken["u1", "a"].last_poll_at, taken["u1", "a"].connected_until) == (later, until)
    assert len(refreshes) == 0


def test_one_write_refreshes_every_queued_agent_and_never_a_revoked_or_gone_one(
    db: Session, caller: Caller, app: FastAPI
) -> None:
    start = utcnow()
    for agent_id in (AGENT_ID, OTHER, "agent_00000000000000bb"):
        record_poll(db, user_id=caller.user.id, agent=AgentIdentity(agent_id), now=start)
    revoke_agent(db, user_id=caller.user.id, agent_id=OTHER, now=start)
    db.execute(delete(TrainingAgent).where(TrainingAgent.agent_id == "agent_00000000000000bb"))
    db.commit()

    seen, until = start + timedelta(seconds=20), start + timedelta(seconds=80)
    refreshes = AgentRefreshes()
    for agent_id in (AGENT_ID, OTHER, "agent_00000000000000bb"):
        refreshes.queue(caller.user.id, agent_id, last_poll_at=seen, connected_until=until)
    with sql_of(app) as statements:
        assert refreshes.write(app.state.session_factory) == 3

    assert len([s for s in statements if s.startswith("UPDATE")]) == 1  # one executemany
    mine, revoked = stored(db), stored(db, OTHER)
    assert mine is not None and revoked is not None
    assert (mine.last_poll_at, mine.connected_until) == (seen, until)
    assert revoked.last_poll_at == start and revoked.revoked_at is not None
    assert stored(db, "agent_00000000000000bb") is None  # not brought back


def test_refreshes_a_failed_write_could_not_store_are_queued_again(app: FastAPI) -> None:
    refreshes = AgentRefreshes()
    now = utcnow()
    refreshes.queue("u1", "a", last_poll_at=now, connected_until=None)

    def broken() -> Session:
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        refreshes.write(broken)  # type: ignore[arg-type]
    assert len(refreshes) == 1 and refreshes.written == 0


async def test_a_warm_poll_due_its_refresh_writes_nothing_itself_and_the_row_follows(
    app: FastAPI, client: httpx.AsyncClient, caller: Caller, db: Session
) -> None:
    first = await client.get(POLL, params={"wait_seconds": 0.1}, headers=caller.headers())
    assert first.status_code == 200  # cold: the route wrote the row
    row = stored(db)
    assert row is not None and row.last_poll_at is not None and row.connected_until is not None
    seen_before, until_before = row.last_poll_at, row.connected_until  # (the row object
    # is refreshed in place by the next read)
    # As if the row's connection were about to lapse: the next hold is due a refresh.
    cached = app.state.poll_cache.agent(caller.user.id, AGENT_ID)
    lapsing = replace(cached, connected_until=utcnow() - timedelta(hours=1))
    app.state.poll_cache.remember_agent(caller.user.id, AGENT_ID, lapsing)
    with sql_of(app) as statements:
        held = await client.get(POLL, params={"wait_seconds": 0.5}, headers=caller.headers())
    assert held.status_code == 200 and held.json()["job"] is None
    # The poll's own write would be record_poll's upsert (an INSERT); the background
    # task's batched UPDATE may run meanwhile, and is not the poll's.
    assert [s for s in statements if "training_agents" in s and "INSERT" in s] == []
    assert len(app.state.agent_refreshes) == 1

    for _ in range(100):  # the background task writes it within about a second
        if app.state.agent_refreshes.written:
            break
        await asyncio.sleep(0.05)
    refreshed = stored(db)
    assert refreshed is not None and refreshed.last_poll_at is not None
    assert refreshed.connected_until is not None
    assert refreshed.last_poll_at > seen_before
    assert refreshed.connected_until > until_before


async def test_refreshes_still_queued_are_written_as_the_app_stops(
    settings: BackendSettings, db: Session, caller: Caller
) -> None:
    start = utcnow()
    record_poll(db, user_id=caller.user.id, agent=AgentIdentity(AGENT_ID), now=start)
    app = create_app(settings)
    seen = start + timedelta(seconds=30)
    async with app.router.lifespan_context(app):
        app.state.agent_refreshes.queue(
            caller.user.id, AGENT_ID, last_poll_at=seen, connected_until=None
        )
        # Stopped at once: the background task's first write (a second away) never came.
    row = stored(db)
    assert row is not None and row.last_poll_at == seen
