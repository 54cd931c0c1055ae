"""POST /api/training/agent/claim/{id}: the winner gets a token; losers learn why."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest
from sqlalchemy.orm import Session

from tests.backend.support import AGENT_ID, Caller, MakeJob, MakeKey, bearer, reload
from training_backend.security import hash_secret


def claim_url(job_id: str) -> str:
    return f"/api/training/agent/claim/{job_id}"


async def test_claim_gives_the_job_and_a_token(
    client: httpx.AsyncClient, caller: Caller, make_job: MakeJob, db: Session
) -> None:
    job = make_job(total_epochs=2.0)

    response = await client.post(claim_url(job.id), headers=caller.headers())

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["job"]["id"] == job.id
    assert body["job"]["total_epochs"] == 2.0
    token = body["job_token"]
    assert isinstance(token, str) and len(token) == 43
    stored = reload(db, job)
    assert stored.status == "running"
    assert stored.agent_id == AGENT_ID
    assert stored.job_token_hash == hash_secret(token)
    assert stored.claimed_at is not None and stored.started_at == stored.claimed_at
    assert stored.attempt == 1


async def test_the_token_authorises_reports(
    client: httpx.AsyncClient, caller: Caller, make_job: MakeJob
) -> None:
    job = make_job()
    token = (await client.post(claim_url(job.id), headers=caller.headers())).json()["job_token"]
    url = f"/api/training/local/{job.id}/status"
    response = await client.patch(url, json={"status": "running"}, headers=bearer(token))
    assert response.status_code == 200


async def test_a_claimed_job_is_no_longer_offered(
    client: httpx.AsyncClient, caller: Caller, make_job: MakeJob
) -> None:
    job = make_job()
    await client.post(claim_url(job.id), headers=caller.headers())
    poll = await client.get("/api/training/agent/poll", headers=caller.headers())
    assert poll.json()["job"] is None


async def test_unknown_job_is_404(client: httpx.AsyncClient, caller: Caller) -> None:
    response = await client.post(claim_url("no-such-job"), headers=caller.headers())
    assert response.status_code == 404
    assert response.json() == {"error": "Job not found", "code": "JOB_NOT_FOUND"}


async def test_another_users_job_is_403(
    client: httpx.AsyncClient, make_job: MakeJob, make_key: MakeKey
) -> None:
    job = make_job()
    response = await client.post(claim_url(job.id), headers=make_key().headers())
    assert response.status_code == 403
    assert response.json() == {"error": "Job belongs to another user", "code": "ACCESS_DENIED"}


@pytest.mark.parametrize("agent_id", [AGENT_ID, "agent_somebody_else"])
async def test_a_second_claim_is_409_already_claimed_even_by_the_same_agent(
    client: httpx.AsyncClient, caller: Caller, make_job: MakeJob, agent_id: str
) -> None:
    job = make_job()
    token = (await client.post(claim_url(job.id), headers=caller.headers())).json()["job_token"]
    # The agent used its token: the claim answer arrived (test_claim_again has the rest).
    url = f"/api/training/local/{job.id}/status"
    await client.patch(url, json={"status": "running"}, headers=bearer(token))
    response = await client.post(claim_url(job.id), headers=caller.headers(agent_id=agent_id))
    assert response.status_code == 409
    assert response.json() == {
        "error": "Job already claimed by another agent",
        "code": "ALREADY_CLAIMED",
    }


async def test_an_unclaimed_job_that_is_not_pending_is_409_invalid_status(
    client: httpx.AsyncClient, caller: Caller, make_job: MakeJob
) -> None:
    job = make_job(status="cancelled")
    response = await client.post(claim_url(job.id), headers=caller.headers())
    assert response.status_code == 409
    assert response.json() == {
        "error": "Job is not pending (status: cancelled)",
        "code": "INVALID_STATUS",
    }


async def test_claim_checks_the_agent_id_too(
    client: httpx.AsyncClient, caller: Caller, make_job: MakeJob, db: Session
) -> None:
    job = make_job()
    response = await client.post(claim_url(job.id), headers=caller.headers(agent_id="agent_1"))
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_AGENT_ID"
    assert reload(db, job).status == "pending"


async def test_claim_answers_created_at_as_stored(
    client: httpx.AsyncClient, caller: Caller, make_job: MakeJob
) -> None:
    job = make_job()
    body = (await client.post(claim_url(job.id), headers=caller.headers())).json()
    assert datetime.fromisoformat(body["job"]["created_at"]) == job.created_at
