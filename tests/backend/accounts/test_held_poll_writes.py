"""A long-polling agent's row: written every other 30 s hold, not every hold, and the
agent stays online and "connected" in between (issue 20: fewer agent-row writes)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.backend.support import AGENT_ID, Caller
from training_backend.db.models import TrainingAgent
from training_backend.db.types import utcnow
from training_backend.services.agents import (
    ONLINE_THRESHOLD,
    POLL_COALESCE,
    AgentIdentity,
    connection_to_record,
    is_connected,
    is_online,
    record_poll,
)

HOLD = timedelta(seconds=30)
GAP = timedelta(milliseconds=50)  # between one hold's answer and the next poll


def row(db: Session) -> TrainingAgent:
    db.expire_all()
    found = db.scalar(select(TrainingAgent).where(TrainingAgent.agent_id == AGENT_ID))
    assert found is not None
    return found


def hold(db: Session, caller: Caller, at: datetime) -> None:
    agent = AgentIdentity(AGENT_ID, hostname="box", version="1")
    record_poll(db, user_id=caller.user.id, agent=agent, now=at, holding_until=at + HOLD)


def test_back_to_back_holds_write_every_other_hold(db: Session, caller: Caller) -> None:
    start = utcnow()
    hold(db, caller, start)
    first = row(db)
    assert first.last_poll_at == start
    assert first.connected_until == start + 2 * HOLD  # this hold and the next

    hold(db, caller, start + HOLD + GAP)  # covered by the row: nothing written
    assert (row(db).last_poll_at, row(db).connected_until) == (start, start + 2 * HOLD)

    third = start + 2 * (HOLD + GAP)
    hold(db, caller, third)  # would outlast the row's connection: written
    assert (row(db).last_poll_at, row(db).connected_until) == (third, third + 2 * HOLD)


def test_a_plain_poll_after_holds_still_refreshes_last_seen(db: Session, caller: Caller) -> None:
    start = utcnow()
    hold(db, caller, start)
    later = start + HOLD + GAP
    record_poll(db, user_id=caller.user.id, agent=AgentIdentity(AGENT_ID), now=later)
    assert row(db).last_poll_at == later  # a plain poll keeps its 10 s coalescing


def test_the_agent_stays_online_and_connected_between_the_writes(
    db: Session, caller: Caller
) -> None:
    start = utcnow()
    hold(db, caller, start)
    hold(db, caller, start + HOLD + GAP)  # not written
    agent = row(db)
    # Just before the third hold writes: last_poll_at is older than the threshold, the
    # row's connection has just ended; the margin covers the moment between two holds.
    between = start + 2 * HOLD + GAP
    assert between - start > ONLINE_THRESHOLD
    assert is_online(agent, now=between)
    assert not is_connected(agent, now=between, held_here=set())
    assert is_connected(agent, now=between - GAP * 2, held_here=set())
    # An agent that went away right after a write: offline once the margin is over.
    assert not is_online(agent, now=start + 2 * HOLD + POLL_COALESCE + GAP)


def test_the_recorded_connection_never_outlasts_the_online_threshold() -> None:
    now = utcnow()
    assert connection_to_record(now, now + HOLD) == now + ONLINE_THRESHOLD
    assert connection_to_record(now, now + timedelta(seconds=5)) == now + timedelta(seconds=10)
    short = timedelta(seconds=20)
    assert connection_to_record(now, now + HOLD, short) == now + short
