"""The agents API the page uses: list, detail with job counts, job history, revoke, enable."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.orm import Session

from tests.backend.accounts.conftest import MakeMember, Member
from tests.backend.support import MakeJob, MakeKey
from training_backend.db.models import TrainingAgent
from training_backend.db.types import utcnow
from training_backend.services.agents import AgentIdentity, record_poll
from training_backend.settings import BackendSettings

AGENTS = "/api/training/agents"
AGENT = "agent_0123456789abcdef"
COLUMNS = {
    "id",
    "user_id",
    "agent_id",
    "hostname",
    "platform",
    "version",
    "status",
    "last_poll_at",
    "registered_at",
    "metadata",
    "revoked_at",
}


def seen(db: Session, member: Member, agent_id: str = AGENT, **headers: object) -> None:
    """Record a poll of ``agent_id`` by ``member``'s agent, ``ago`` in the past."""
    ago = headers.pop("ago", timedelta(0))
    assert isinstance(ago, timedelta)
    identity = AgentIdentity(agent_id, **headers)  # type: ignore[arg-type]
    record_poll(db, user_id=member.user.id, agent=identity, now=utcnow() - ago)


async def test_no_agents_yet(client: httpx.AsyncClient, member: Member) -> None:
    response = await client.get(AGENTS, headers=member.headers())
    assert response.status_code == 200
    assert response.json() == {"agents": [], "online_threshold_seconds": 60}


async def test_the_list_has_every_column_and_the_live_state_newest_first(
    client: httpx.AsyncClient,
    member: Member,
    make_member: MakeMember,
    db: Session,
    make_job: MakeJob,
) -> None:
    seen(db, member, "agent_older000001", ago=timedelta(minutes=5), hostname="old-box")
    seen(db, member, AGENT, hostname="gpu-box", platform="linux", version="0.2.0")
    seen(db, make_member(), "agent_someone0001")
    running = make_job(
        user_id=member.user.id, status="running", agent_id=AGENT, claimed_at=utcnow()
    )
    make_job(user_id=member.user.id, status="completed", agent_id=AGENT)

    body = (await client.get(AGENTS, headers=member.headers())).json()

    newest, older = body["agents"]
    live = {"is_online", "revoked", "current_jobs", "labels", "connected_now"}
    assert COLUMNS | live == set(newest)
    assert (newest["agent_id"], newest["hostname"], newest["platform"]) == (
        AGENT,
        "gpu-box",
        "linux",
    )
    assert (newest["status"], newest["is_online"], newest["revoked"]) == ("online", True, False)
    assert [job["id"] for job in newest["current_jobs"]] == [running.id]
    assert newest["current_jobs"][0]["status"] == "running"
    assert (older["agent_id"], older["status"], older["is_online"]) == (
        "agent_older000001",
        "offline",
        False,
    )
    assert older["current_jobs"] == []


async def test_the_online_threshold_comes_from_the_settings(
    client: httpx.AsyncClient, app: FastAPI, member: Member, db: Session
) -> None:
    settings: BackendSettings = app.state.settings
    app.state.settings = settings.model_copy(update={"online_threshold_seconds": 300})
    seen(db, member, ago=timedelta(minutes=4))
    body = (await client.get(AGENTS, headers=member.headers())).json()
    assert body["online_threshold_seconds"] == 300
    assert body["agents"][0]["is_online"] is True


async def test_detail_counts_only_this_users_jobs(
    client: httpx.AsyncClient, member: Member, make_key: MakeKey, db: Session, make_job: MakeJob
) -> None:
    seen(db, member)
    for status in ["completed", "completed", "failed", "running", "cancelled"]:
        make_job(user_id=member.user.id, status=status, agent_id=AGENT)
    make_job(user_id=member.user.id, status="completed", agent_id="agent_elsewhere01")
    stranger = make_key()  # the same agent id under another user
    make_job(user_id=stranger.user.id, status="completed", agent_id=AGENT)

    response = await client.get(f"{AGENTS}/{AGENT}", headers=member.headers())

    assert response.status_code == 200
    agent = response.json()["agent"]
    assert (agent["total_jobs"], agent["completed_jobs"], agent["failed_jobs"]) == (5, 2, 1)
    assert agent["running_jobs"] == 1
    assert set(agent) >= COLUMNS


async def test_job_history_is_newest_first_and_paginated(
    client: httpx.AsyncClient, member: Member, db: Session, make_job: MakeJob
) -> None:
    seen(db, member)
    start = utcnow()
    ids = [
        make_job(
            user_id=member.user.id,
            status="completed",
            agent_id=AGENT,
            claimed_at=start + timedelta(minutes=n),
        ).id
        for n in range(5)
    ]
    make_job(user_id=member.user.id)  # pending: no agent

    first = await client.get(f"{AGENTS}/{AGENT}/jobs?limit=2", headers=member.headers())
    last = await client.get(f"{AGENTS}/{AGENT}/jobs?limit=2&offset=4", headers=member.headers())

    assert first.status_code == 200
    page = first.json()
    assert [job["id"] for job in page["jobs"]] == ids[::-1][:2]
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 0)
    assert [job["id"] for job in last.json()["jobs"]] == [ids[0]]


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "offset=-1", "limit=x"])
async def test_bad_paging_is_400(client: httpx.AsyncClient, member: Member, query: str) -> None:
    response = await client.get(f"{AGENTS}/{AGENT}/jobs?{query}", headers=member.headers())
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_REQUEST"


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("GET", "/jobs"), ("DELETE", ""), ("POST", "/enable")],
)
async def test_other_users_and_unknown_agents_are_404(
    client: httpx.AsyncClient,
    member: Member,
    make_member: MakeMember,
    db: Session,
    method: str,
    suffix: str,
) -> None:
    owner = make_member()
    seen(db, owner)
    expected = {"error": "Agent not found", "code": "AGENT_NOT_FOUND"}

    theirs = await client.request(method, f"{AGENTS}/{AGENT}{suffix}", headers=member.headers())
    unknown = await client.request(method, f"{AGENTS}/agent_nope{suffix}", headers=owner.headers())

    assert (theirs.status_code, theirs.json()) == (404, expected)
    assert (unknown.status_code, unknown.json()) == (404, expected)
    row = db.get(TrainingAgent, db.query(TrainingAgent.id).scalar())
    assert row is not None and row.revoked_at is None


async def test_revoke_then_enable(
    client: httpx.AsyncClient, member: Member, make_key: MakeKey, db: Session
) -> None:
    agent = make_key(member.user)
    poll = "/api/training/agent/poll"
    assert (await client.get(poll, headers=agent.headers(AGENT))).status_code == 200

    revoked = await client.delete(f"{AGENTS}/{AGENT}", headers=member.headers())
    twice = await client.delete(f"{AGENTS}/{AGENT}", headers=member.headers())
    refused = await client.get(poll, headers=agent.headers(AGENT))
    listed = (await client.get(AGENTS, headers=member.headers())).json()["agents"]

    assert revoked.status_code == 200
    body = revoked.json()["agent"]
    assert (body["revoked"], body["status"], body["is_online"]) == (True, "offline", False)
    assert twice.json()["agent"]["revoked_at"] == body["revoked_at"]
    assert refused.status_code == 403 and refused.json()["code"] == "AGENT_REVOKED"
    assert "Training Agent page" in refused.json()["error"]
    assert [row["revoked"] for row in listed] == [True]

    enabled = await client.post(f"{AGENTS}/{AGENT}/enable", headers=member.headers())

    assert enabled.status_code == 200 and enabled.json()["agent"]["revoked"] is False
    assert (await client.get(poll, headers=agent.headers(AGENT))).status_code == 200
    listed = (await client.get(AGENTS, headers=member.headers())).json()["agents"]
    assert [row["is_online"] for row in listed] == [True]


async def test_several_agents_per_user_are_listed_apart(
    client: httpx.AsyncClient, member: Member, db: Session
) -> None:
    for n in range(3):
        seen(db, member, f"agent_machine{n:04d}", ago=timedelta(seconds=10 - n))
    db.execute(update(TrainingAgent).values(registered_at=TrainingAgent.last_poll_at))
    db.commit()
    body = (await client.get(AGENTS, headers=member.headers())).json()
    assert [row["agent_id"] for row in body["agents"]] == [
        "agent_machine0002",
        "agent_machine0001",
        "agent_machine0000",
    ]


@pytest.mark.parametrize("path", ["", f"/{AGENT}", f"/{AGENT}/jobs"])
async def test_the_agents_api_needs_a_session(
    client: httpx.AsyncClient, make_key: MakeKey, path: str
) -> None:
    key = make_key()
    response = await client.get(f"{AGENTS}{path}", headers={"Authorization": f"Bearer {key.key}"})
    assert response.status_code == 401
    anonymous = await client.get(f"{AGENTS}{path}")
    assert anonymous.status_code == 401
