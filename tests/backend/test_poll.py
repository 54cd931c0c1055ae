"""GET /api/training/agent/poll: agent checks, the offered job, and the agent's row."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.backend.support import AGENT_ID, Caller, MakeJob, MakeKey
from training_backend.db.models import TrainingAgent
from training_backend.db.types import utcnow
from training_backend.deps import get_settings
from training_backend.settings import BackendSettings

POLL = "/api/training/agent/poll"


def agent_row(db: Session, agent_id: str = AGENT_ID) -> TrainingAgent:
    db.expire_all()
    row = db.scalar(select(TrainingAgent).where(TrainingAgent.agent_id == agent_id))
    assert row is not None
    return row


async def test_no_job_answers_null_with_interval_features_and_message(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    response = await client.get(POLL, headers=caller.headers())

    assert response.status_code == 200
    assert response.json() == {
        "job": None,
        "poll_interval_seconds": 10,
        "features": [
            "long_poll",
            "heartbeat",
            "leases",
            "log_offsets",
            "metrics_upsert",
            "job_details",
            "dataset_download",
            "agent_info",
            "revocation",
            "metrics_extra",
            "artifacts",
            "agent_update",
            "requirements",
        ],
        "message": "No pending jobs available",
    }


async def test_offers_the_oldest_pending_unclaimed_job_of_the_caller(
    client: httpx.AsyncClient, caller: Caller, make_job: MakeJob, make_key: MakeKey
) -> None:
    make_job(status="running", agent_id="agent_other0001")
    oldest = make_job(model_name="first", total_steps=10)
    make_job(model_name="second")
    other = make_key()
    make_job(user_id=other.user.id)

    body = (await client.get(POLL, headers=caller.headers())).json()

    assert "message" not in body
    job = body["job"]
    assert job["id"] == oldest.id
    assert set(job) == {
        "id",
        "model_name",
        "dataset_path",
        "config",
        "total_epochs",
        "total_steps",
        "created_at",
        "dataset",
    }
    assert job["dataset"] is None
    assert job["model_name"] == "first"
    assert job["total_steps"] == 10
    assert job["config"] == {"type": "command", "command": ["true"]}
    assert datetime.fromisoformat(job["created_at"]) == oldest.created_at


async def test_an_offer_is_held_for_its_agent_and_not_offered_to_others(
    client: httpx.AsyncClient, caller: Caller, make_job: MakeJob
) -> None:
    job = make_job()
    first = (await client.get(POLL, headers=caller.headers())).json()
    other = (await client.get(POLL, headers=caller.headers(agent_id="agent_another01"))).json()
    again = (await client.get(POLL, headers=caller.headers())).json()
    assert first["job"]["id"] == again["job"]["id"] == job.id
    assert other["job"] is None


async def test_interval_comes_from_the_settings_dependency(
    client: httpx.AsyncClient, caller: Caller, app: FastAPI, settings: BackendSettings
) -> None:
    app.dependency_overrides[get_settings] = lambda: settings.model_copy(
        update={"poll_interval_seconds": 3}
    )
    body = (await client.get(POLL, headers=caller.headers())).json()
    assert body["poll_interval_seconds"] == 3


@pytest.mark.parametrize(
    ("agent_id", "status", "code", "error"),
    [
        (None, 400, "MISSING_AGENT_ID", "Missing X-Agent-ID header"),
        ("", 400, "MISSING_AGENT_ID", "Missing X-Agent-ID header"),
        ("agent_12", 400, "INVALID_AGENT_ID", "Invalid X-Agent-ID format. Expected: agent_xxxxx"),
        (
            "worker_123456",
            400,
            "INVALID_AGENT_ID",
            "Invalid X-Agent-ID format. Expected: agent_xxxxx",
        ),
        (
            "agent_" + "x" * 200,
            400,
            "INVALID_AGENT_ID",
            "Invalid X-Agent-ID format. Expected: agent_xxxxx",
        ),
    ],
)
async def test_agent_id_is_required_and_checked(
    client: httpx.AsyncClient,
    caller: Caller,
    agent_id: str | None,
    status: int,
    code: str,
    error: str,
) -> None:
    headers = caller.headers(agent_id=None)
    if agent_id is not None:
        headers["X-Agent-ID"] = agent_id
    response = await client.get(POLL, headers=headers)
    assert response.status_code == status
    assert response.json() == {"error": error, "code": code}


async def test_authentication_is_checked_before_the_agent_id(client: httpx.AsyncClient) -> None:
    response = await client.get(POLL)
    assert response.status_code == 401
    assert response.json()["code"] == "MISSING_AUTHORIZATION"


async def test_first_poll_registers_the_agent(
    client: httpx.AsyncClient, caller: Caller, db: Session
) -> None:
    before = utcnow()
    headers = caller.headers(
        **{"X-Agent-Hostname": "gpu-box", "X-Agent-Platform": "linux", "X-Agent-Version": "0.1.0"}
    )
    await client.get(POLL, headers=headers)

    row = agent_row(db)
    assert (row.user_id, row.hostname, row.platform, row.version) == (
        caller.user.id,
        "gpu-box",
        "linux",
        "0.1.0",
    )
    assert row.status == "online"
    assert row.last_poll_at is not None and row.last_poll_at >= before
    assert row.registered_at >= before


async def test_later_polls_refresh_the_row_and_absent_headers_erase_nothing(
    client: httpx.AsyncClient, caller: Caller, db: Session
) -> None:
    full = {"X-Agent-Hostname": "gpu-box", "X-Agent-Platform": "darwin", "X-Agent-Version": "1"}
    await client.get(POLL, headers=caller.headers(**full))
    first = agent_row(db)
    registered, first_poll = first.registered_at, first.last_poll_at

    await client.get(POLL, headers=caller.headers(**{"X-Agent-Version": "2"}))

    row = agent_row(db)
    assert (row.hostname, row.platform, row.version) == ("gpu-box", "darwin", "2")
    assert row.registered_at == registered
    assert row.last_poll_at is not None and first_poll is not None
    assert row.last_poll_at > first_poll


async def test_an_unknown_platform_is_stored_as_null_and_the_poll_succeeds(
    client: httpx.AsyncClient, caller: Caller, db: Session
) -> None:
    await client.get(POLL, headers=caller.headers(**{"X-Agent-Platform": "linux"}))
    response = await client.get(POLL, headers=caller.headers(**{"X-Agent-Platform": "plan9"}))
    assert response.status_code == 200
    assert agent_row(db).platform is None


async def test_platform_is_matched_case_insensitively(
    client: httpx.AsyncClient, caller: Caller, db: Session
) -> None:
    await client.get(POLL, headers=caller.headers(**{"X-Agent-Platform": "Windows"}))
    assert agent_row(db).platform == "windows"


async def test_the_same_agent_id_under_two_users_is_two_rows(
    client: httpx.AsyncClient, caller: Caller, make_key: MakeKey, db: Session
) -> None:
    other = make_key()
    await client.get(POLL, headers=caller.headers())
    await client.get(POLL, headers=other.headers())
    rows = db.scalars(select(TrainingAgent).where(TrainingAgent.agent_id == AGENT_ID)).all()
    assert {row.user_id for row in rows} == {caller.user.id, other.user.id}
