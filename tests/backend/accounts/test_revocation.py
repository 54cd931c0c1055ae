"""Revoked means revoked everywhere: the job tokens of a revoked agent or key stop
working (403 ``JOB_TOKEN_REVOKED``), and an agent that claims without polling is listed
and can be revoked."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.backend.accounts.conftest import Member
from tests.backend.support import AGENT_ID, JSON, MakeJob, MakeKey, bearer, reload
from training_backend.db.models import ApiKey, TrainingJob
from training_backend.security import hash_secret
from training_backend.services.job_revocation import AGENT_REVOKED_ERROR

AGENTS = "/api/training/agents"
OTHER_AGENT = "agent_fedcba9876543210"


async def claimed(
    client: httpx.AsyncClient, key: str, job: TrainingJob, agent_id: str = AGENT_ID
) -> str:
    headers = {"Authorization": f"Bearer {key}", "X-Agent-ID": agent_id}
    response = await client.post(f"/api/training/agent/claim/{job.id}", headers=headers)
    assert response.status_code == 200, response.text
    token: str = response.json()["job_token"]
    return token


async def reports(client: httpx.AsyncClient, job: TrainingJob, token: str) -> list[httpx.Response]:
    """Every kind of report the job's agent could send with ``token``."""
    base = f"/api/training/local/{job.id}"
    headers = bearer(token) | JSON
    return [
        await client.post(f"{base}/logs", json={"logs": ["still here"]}, headers=headers),
        await client.put(f"{base}/metrics", json={"step": 1, "epoch": 0.1}, headers=headers),
        await client.patch(f"{base}/status", json={"status": "completed"}, headers=headers),
        await client.post(f"{base}/heartbeat", headers=bearer(token)),
        await client.get(f"{base}/dataset", headers=bearer(token)),
    ]


def assert_all_revoked(answers: list[httpx.Response]) -> None:
    for answer in answers:
        assert answer.status_code == 403, (answer.request.url, answer.text)
        assert answer.json()["code"] == "JOB_TOKEN_REVOKED"


@pytest.mark.parametrize(("max_attempts", "outcome"), [(1, "failed"), (2, "pending")])
async def test_a_revoked_agents_job_token_is_refused_everywhere(
    client: httpx.AsyncClient,
    member: Member,
    make_key: MakeKey,
    make_job: MakeJob,
    db: Session,
    max_attempts: int,
    outcome: str,
) -> None:
    key = make_key(member.user).key
    job = make_job(user_id=member.user.id, max_attempts=max_attempts)
    token = await claimed(client, key, job)  # attempt 1 of max_attempts

    revoked = await client.delete(f"{AGENTS}/{AGENT_ID}", headers=member.headers())

    assert revoked.status_code == 200
    assert_all_revoked(await reports(client, job, token))
    job = reload(db, job)
    assert (job.status, job.error_message) == (outcome, AGENT_REVOKED_ERROR)
    assert job.job_token_hash is None


async def test_revoking_the_key_that_claimed_revokes_the_job_token(
    client: httpx.AsyncClient,
    member: Member,
    make_key: MakeKey,
    make_job: MakeJob,
    db: Session,
) -> None:
    used, spare = make_key(member.user), make_key(member.user)
    mine, theirs = make_job(user_id=member.user.id), make_job(user_id=member.user.id)
    token = await claimed(client, used.key, mine)
    other_token = await claimed(client, spare.key, theirs, OTHER_AGENT)
    key_id = db.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_secret(used.key)))

    response = await client.delete(f"/api/user/api-keys/{key_id}", headers=member.headers())

    assert response.status_code == 200
    assert_all_revoked(await reports(client, mine, token))
    still = await client.post(
        f"/api/training/local/{theirs.id}/heartbeat", headers=bearer(other_token)
    )
    assert still.status_code == 200
    assert reload(db, theirs).status == "running"


async def test_an_agent_that_claims_without_polling_is_listed_and_revocable(
    client: httpx.AsyncClient, member: Member, make_key: MakeKey, make_job: MakeJob
) -> None:
    key = make_key(member.user).key
    job = make_job(user_id=member.user.id)
    token = await claimed(client, key, job, OTHER_AGENT)

    listed = (await client.get(AGENTS, headers=member.headers())).json()["agents"]
    assert [agent["agent_id"] for agent in listed] == [OTHER_AGENT]
    revoked = await client.delete(f"{AGENTS}/{OTHER_AGENT}", headers=member.headers())
    assert revoked.status_code == 200
    assert_all_revoked(await reports(client, job, token))
    refused = await client.post(
        f"/api/training/agent/claim/{make_job(user_id=member.user.id).id}",
        headers={"Authorization": f"Bearer {key}", "X-Agent-ID": OTHER_AGENT},
    )
    assert (refused.status_code, refused.json()["code"]) == (403, "AGENT_REVOKED")
