"""A claim whose answer was lost does not strand the job: until the agent first uses
the claim's token, the same agent may claim the job again (a fresh token, the old one
retired), and its polls offer the job again after a while (issue 16)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.orm import Session

from tests.backend.support import Caller, MakeJob, bearer, reload
from training_backend.services import claims

POLL = "/api/training/agent/poll"


def claim_url(job_id: str) -> str:
    return f"/api/training/agent/claim/{job_id}"


async def claim(
    client: httpx.AsyncClient, caller: Caller, job_id: str, **headers: str
) -> httpx.Response:
    return await client.post(claim_url(job_id), headers=caller.headers(**headers))


async def test_the_same_agent_claims_again_and_the_old_token_is_retired(
    client: httpx.AsyncClient, caller: Caller, make_job: MakeJob, db: Session
) -> None:
    job = make_job()
    lost = (await claim(client, caller, job.id)).json()["job_token"]  # the answer never arrived

    again = await claim(client, caller, job.id)

    assert again.status_code == 200, again.text
    token = again.json()["job_token"]
    assert token != lost
    assert reload(db, job).attempt == 1  # the same attempt: it never ran
    url = f"/api/training/local/{job.id}/status"
    old = await client.patch(url, json={"status": "running"}, headers=bearer(lost))
    assert (old.status_code, old.json()["code"]) == (409, "LEASE_EXPIRED")
    new = await client.patch(url, json={"status": "running"}, headers=bearer(token))
    assert new.status_code == 200
    assert reload(db, job).claim_confirmed_at is not None


async def test_another_agent_cannot_take_an_unconfirmed_claim(
    client: httpx.AsyncClient, caller: Caller, make_job: MakeJob
) -> None:
    job = make_job()
    await claim(client, caller, job.id)
    other = await claim(client, caller, job.id, agent_id="agent_somebody_else")
    assert (other.status_code, other.json()["code"]) == (409, "ALREADY_CLAIMED")


@pytest.mark.parametrize("report", ["status", "logs", "heartbeat"])
async def test_any_use_of_the_token_confirms_the_claim(
    client: httpx.AsyncClient, caller: Caller, make_job: MakeJob, report: str
) -> None:
    job = make_job()
    token = (await claim(client, caller, job.id)).json()["job_token"]
    base = f"/api/training/local/{job.id}"
    if report == "status":
        await client.patch(f"{base}/status", json={"status": "running"}, headers=bearer(token))
    elif report == "logs":
        await client.post(f"{base}/logs", json={"logs": ["x"]}, headers=bearer(token))
    else:
        await client.post(f"{base}/heartbeat", json={}, headers=bearer(token))

    again = await claim(client, caller, job.id)

    assert (again.status_code, again.json()["code"]) == (409, "ALREADY_CLAIMED")


async def test_a_poll_offers_an_unconfirmed_claim_again_to_its_agent_only(
    client: httpx.AsyncClient,
    caller: Caller,
    make_job: MakeJob,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = make_job()
    await claim(client, caller, job.id)
    assert (await client.get(POLL, headers=caller.headers())).json()["job"] is None  # too soon

    monkeypatch.setattr(claims, "REOFFER_AFTER_S", 0.0)
    mine = (await client.get(POLL, headers=caller.headers())).json()["job"]
    theirs = await client.get(POLL, headers=caller.headers(agent_id="agent_somebody_else"))

    assert mine is not None and mine["id"] == job.id
    assert theirs.json()["job"] is None
    assert (await claim(client, caller, job.id)).status_code == 200
