"""The Training Agent page's view of an agent: its labels, and "connected now" while it
holds a long poll, in this process or (as its row records) in another one."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.orm import Session

from tests.backend.accounts.conftest import Member
from tests.backend.support import MakeKey
from training_backend.db.models import TrainingAgent
from training_backend.db.types import utcnow
from training_backend.services.wakeups import Wakeups

AGENTS = "/api/training/agents"
POLL = "/api/training/agent/poll"
HOLDER = "agent_holder000001"
PLAIN = "agent_plain0000001"


async def views(client: httpx.AsyncClient, member: Member) -> dict[str, dict[str, object]]:
    listed = (await client.get(AGENTS, headers=member.headers())).json()["agents"]
    return {view["agent_id"]: view for view in listed}


async def test_an_agent_holding_a_poll_is_connected_now_and_shows_its_labels(
    app: FastAPI, client: httpx.AsyncClient, member: Member, make_key: MakeKey
) -> None:
    caller = make_key(member.user)
    info = json.dumps({"labels": ["a100", "eu"], "max_jobs": 1, "busy_jobs": 0})
    await client.get(POLL, headers=caller.headers(PLAIN))
    holding = asyncio.create_task(
        client.get(
            POLL,
            params={"wait_seconds": 30},
            headers=caller.headers(HOLDER, **{"X-Agent-Info": info}),
        )
    )
    wakeups: Wakeups = app.state.wakeups
    while wakeups.waiting(member.user.id) < 1:
        await asyncio.sleep(0.01)
    during = await views(client, member)
    wakeups.close()
    await holding

    assert (during[HOLDER]["connected_now"], during[PLAIN]["connected_now"]) == (True, False)
    assert during[HOLDER]["labels"] == ["a100", "eu"] and during[PLAIN]["labels"] == []


async def test_a_poll_held_by_another_process_is_seen_through_the_row(
    client: httpx.AsyncClient, member: Member, make_key: MakeKey, db: Session
) -> None:
    caller = make_key(member.user)
    await client.get(POLL, headers=caller.headers(HOLDER))
    later = utcnow() + timedelta(seconds=20)
    db.execute(update(TrainingAgent).values(connected_until=later))
    db.commit()
    assert (await views(client, member))[HOLDER]["connected_now"] is True
    db.execute(update(TrainingAgent).values(connected_until=utcnow() - timedelta(seconds=1)))
    db.commit()
    assert (await views(client, member))[HOLDER]["connected_now"] is False


async def test_a_long_poll_records_until_when_it_is_held(
    app: FastAPI, client: httpx.AsyncClient, member: Member, make_key: MakeKey, db: Session
) -> None:
    caller = make_key(member.user)
    started = utcnow()
    await client.get(POLL, params={"wait_seconds": 0.2}, headers=caller.headers(HOLDER))
    row = db.query(TrainingAgent).filter_by(agent_id=HOLDER).one()
    assert row.connected_until is not None
    assert started < row.connected_until <= utcnow() + timedelta(seconds=1)
