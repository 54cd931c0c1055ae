"""What a poll records about its agent: the X-Agent-Info and X-Agent-Current-Jobs headers,
the online threshold, and revocation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from tests.backend.support import AGENT_ID, Caller, MakeJob
from training_backend.db.models import TrainingAgent
from training_backend.db.types import utcnow
from training_backend.services.agent_identity import parse_agent_info, parse_current_jobs
from training_backend.services.agents import (
    ONLINE_THRESHOLD,
    POLL_COALESCE,
    AgentIdentity,
    forget_stale_agents,
    is_online,
    poll_coalesce,
    record_poll,
    revoke_agent,
)
from training_backend.settings import BackendSettings

POLL = "/api/training/agent/poll"
INFO = {"cpu_count": 16, "memory_gb": 62.5, "gpus": [{"name": "A10", "memory_gb": 24}]}


def metadata(db: Session, agent_id: str = AGENT_ID) -> dict[str, Any]:
    db.expire_all()
    row = db.scalar(select(TrainingAgent).where(TrainingAgent.agent_id == agent_id))
    assert row is not None
    return dict(row.metadata_)


async def poll(client: httpx.AsyncClient, caller: Caller, **headers: str) -> httpx.Response:
    response = await client.get(POLL, headers=caller.headers(**headers))
    assert response.status_code == 200, response.text
    return response


async def test_agent_info_and_current_jobs_are_stored_in_metadata(
    client: httpx.AsyncClient, caller: Caller, db: Session
) -> None:
    await poll(
        client,
        caller,
        **{"X-Agent-Info": json.dumps(INFO), "X-Agent-Current-Jobs": "job-1, job-2"},
    )
    assert metadata(db) == {"info": INFO, "current_jobs": ["job-1", "job-2"]}

    await poll(client, caller, **{"X-Agent-Current-Jobs": ""})
    assert metadata(db) == {"info": INFO, "current_jobs": []}


@pytest.mark.parametrize(
    "bad_info",
    [
        "{not json",
        "[1, 2, 3]",
        '"a string"',
        json.dumps({"blob": "x" * 5000}),  # over 4 KiB
        "[" * 2000 + "]" * 2000,  # deeper than the parser allows
        '{"gpus": [{"name": "A10\\u0000"}]}',  # PostgreSQL stores no NUL in JSON
        '{"memory_gb": NaN}',
        '{"memory_gb": 1e999}',
    ],
)
async def test_unusable_agent_info_is_ignored_and_erases_nothing(
    client: httpx.AsyncClient, caller: Caller, db: Session, bad_info: str
) -> None:
    await poll(client, caller, **{"X-Agent-Info": json.dumps(INFO)})
    await poll(client, caller, **{"X-Agent-Info": bad_info})
    await poll(client, caller)  # absent
    assert metadata(db) == {"info": INFO}


@pytest.mark.parametrize("bad_jobs", ["job 1", "a;b", ",".join(f"j{n}" for n in range(65))])
async def test_malformed_current_jobs_are_ignored(
    client: httpx.AsyncClient, caller: Caller, db: Session, bad_jobs: str
) -> None:
    await poll(client, caller, **{"X-Agent-Current-Jobs": "job-1"})
    await poll(client, caller, **{"X-Agent-Current-Jobs": bad_jobs})
    assert metadata(db) == {"current_jobs": ["job-1"]}


def test_header_parsers() -> None:
    assert parse_agent_info('{"a":1}') == {"a": 1}
    assert parse_agent_info(None) is None
    assert parse_current_jobs("a,,b, a") == ("a", "b")
    assert parse_current_jobs(None) is None


@pytest.fixture
def statements(db: Session) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    engine = db.get_bind()
    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def test_a_poll_is_one_read_and_one_upsert_and_rewrites_metadata_only_on_change(
    db: Session, caller: Caller, statements: list[str]
) -> None:
    # Polls further apart than the coalescing window, so each one writes.
    start, later = utcnow(), utcnow() + POLL_COALESCE
    agent = AgentIdentity(AGENT_ID, info={"cpu_count": 4})
    record_poll(db, user_id=caller.user.id, agent=agent, now=start)
    statements.clear()

    record_poll(db, user_id=caller.user.id, agent=agent, now=later)
    same = list(statements)
    statements.clear()
    changed = AgentIdentity(AGENT_ID, info={"cpu_count": 8})
    record_poll(db, user_id=caller.user.id, agent=changed, now=later + POLL_COALESCE)

    assert len(same) == len(statements) == 2
    assert "metadata" not in same[1].split("DO UPDATE SET")[1]
    assert "metadata" in statements[1].split("DO UPDATE SET")[1]


def last_poll(db: Session) -> datetime | None:
    db.expire_all()
    return db.scalar(select(TrainingAgent.last_poll_at))


def test_polls_within_the_coalescing_window_write_nothing_unless_something_changed(
    db: Session, caller: Caller, statements: list[str]
) -> None:
    start = utcnow()
    full = AgentIdentity(AGENT_ID, hostname="box", platform="linux", version="1", info={"a": 1})
    record_poll(db, user_id=caller.user.id, agent=full, now=start)
    statements.clear()

    soon = start + POLL_COALESCE - timedelta(milliseconds=1)
    record_poll(db, user_id=caller.user.id, agent=full, now=soon)
    record_poll(db, user_id=caller.user.id, agent=AgentIdentity(AGENT_ID), now=soon)
    assert statements == [statements[0]] * 2 and "SELECT" in statements[0]  # reads only
    assert last_poll(db) == start

    at = start + timedelta(seconds=1)
    for changed in (
        AgentIdentity(AGENT_ID, hostname="other"),
        AgentIdentity(AGENT_ID, version="2"),
        AgentIdentity(AGENT_ID, platform="plan9"),  # unknown: stored as null
        AgentIdentity(AGENT_ID, info={"a": 2}),
        AgentIdentity(AGENT_ID, current_jobs=("job-1",)),
    ):
        at += timedelta(milliseconds=1)  # within the window of the previous write
        record_poll(db, user_id=caller.user.id, agent=changed, now=at)
        assert last_poll(db) == at, changed
    db.expire_all()
    row = db.scalar(select(TrainingAgent))
    assert row is not None
    assert (row.hostname, row.version, row.platform) == ("other", "2", None)

    record_poll(db, user_id=caller.user.id, agent=full, now=start + 3 * POLL_COALESCE)
    assert last_poll(db) == start + 3 * POLL_COALESCE


def test_the_coalescing_window_shrinks_with_a_short_online_threshold() -> None:
    assert poll_coalesce(60) == POLL_COALESCE == timedelta(seconds=10)
    assert poll_coalesce(15) == timedelta(seconds=2.5)
    # A long-polling agent (30 s holds) still looks online with the window's lag.
    assert timedelta(seconds=30) + POLL_COALESCE < ONLINE_THRESHOLD


def test_online_means_polled_within_the_threshold_and_not_revoked(
    db: Session, caller: Caller
) -> None:
    now = utcnow()
    record_poll(db, user_id=caller.user.id, agent=AgentIdentity(AGENT_ID), now=now)
    row = db.scalar(select(TrainingAgent))
    assert row is not None
    assert is_online(row, now=now + ONLINE_THRESHOLD)
    assert not is_online(row, now=now + ONLINE_THRESHOLD + timedelta(seconds=1))
    assert is_online(row, now=now + timedelta(seconds=100), threshold=timedelta(seconds=120))
    revoke_agent(db, user_id=caller.user.id, agent_id=AGENT_ID, now=now)
    assert not is_online(row, now=now)


def test_the_threshold_setting_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert BackendSettings().online_threshold_seconds == 60
    assert BackendSettings().agent_retention_days == 30
    monkeypatch.setenv("TRAINING_BACKEND_ONLINE_THRESHOLD_SECONDS", "15")
    assert BackendSettings().online_threshold_seconds == 15


async def test_a_revoked_agent_is_refused_on_poll_and_claim_and_nothing_is_written(
    client: httpx.AsyncClient, caller: Caller, db: Session, make_job: MakeJob
) -> None:
    await poll(client, caller, **{"X-Agent-Hostname": "box"})
    revoke_agent(db, user_id=caller.user.id, agent_id=AGENT_ID, now=utcnow())
    before = db.scalar(select(TrainingAgent.last_poll_at))
    job = make_job()

    refused = await client.get(POLL, headers=caller.headers(**{"X-Agent-Hostname": "new"}))
    claim = await client.post(f"/api/training/agent/claim/{job.id}", headers=caller.headers())

    revoked = {
        "error": "This agent was revoked on the Training Agent page; "
        "enable it again there to let it poll and claim jobs",
        "code": "AGENT_REVOKED",
    }
    assert (refused.status_code, refused.json()) == (403, revoked)
    assert (claim.status_code, claim.json()) == (403, revoked)
    db.expire_all()
    row = db.scalar(select(TrainingAgent))
    assert row is not None and (row.last_poll_at, row.hostname) == (before, "box")
    other_agent = caller.headers(agent_id="agent_another0001")
    assert (await client.get(POLL, headers=other_agent)).status_code == 200


def test_forget_stale_agents_keeps_recent_and_revoked_ones(db: Session, caller: Caller) -> None:
    now = utcnow()
    old = now - timedelta(days=31)
    for agent_id, seen in [
        ("agent_recent0001", now - timedelta(days=29)),
        ("agent_stale00001", old),
        ("agent_revoked001", old),
    ]:
        record_poll(db, user_id=caller.user.id, agent=AgentIdentity(agent_id), now=seen)
    revoke_agent(db, user_id=caller.user.id, agent_id="agent_revoked001", now=old)

    forgotten = forget_stale_agents(db, now=now, retention=timedelta(days=30))

    assert forgotten == 1
    left = set(db.scalars(select(TrainingAgent.agent_id)))
    assert left == {"agent_recent0001", "agent_revoked001"}
