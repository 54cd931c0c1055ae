"""API keys and job tokens: where they are read from and how each failure answers."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy.orm import Session

from tests.backend.support import AGENT_ID, Caller, MakeKey, MakeRunningJob, bearer
from training_backend.db.models import ApiKey
from training_backend.db.types import utcnow
from training_backend.security import hash_secret
from training_backend.services import poll_cache
from training_backend.services.api_keys import revoke_api_key

POLL = "/api/training/agent/poll"


def key_row(db: Session, key: str) -> ApiKey:
    db.expire_all()
    row = db.query(ApiKey).filter_by(key_hash=hash_secret(key)).one()
    return row


@pytest.mark.parametrize("header", ["X-API-Key", "X-Workspace-API-Key", "Authorization"])
async def test_the_key_is_read_from_each_supported_header(
    client: httpx.AsyncClient, caller: Caller, header: str
) -> None:
    value = f"Bearer {caller.key}" if header == "Authorization" else caller.key
    response = await client.get(POLL, headers={header: value, "X-Agent-ID": AGENT_ID})
    assert response.status_code == 200


async def test_x_api_key_wins_over_authorization(client: httpx.AsyncClient, caller: Caller) -> None:
    headers = {"X-API-Key": caller.key, "Authorization": "Bearer wrong", "X-Agent-ID": AGENT_ID}
    assert (await client.get(POLL, headers=headers)).status_code == 200


async def test_bearer_is_case_insensitive(client: httpx.AsyncClient, caller: Caller) -> None:
    headers = {"Authorization": f"bearer   {caller.key}", "X-Agent-ID": AGENT_ID}
    assert (await client.get(POLL, headers=headers)).status_code == 200


@pytest.mark.parametrize(
    ("headers", "code", "error"),
    [
        ({}, "MISSING_AUTHORIZATION", "Missing authorization header"),
        ({"Authorization": "Basic abc"}, "MISSING_AUTHORIZATION", "Missing authorization header"),
        ({"Authorization": "Bearer wak_short"}, "INVALID_API_KEY_FORMAT", "Invalid API key format"),
        ({"X-API-Key": "not-a-key"}, "INVALID_API_KEY_FORMAT", "Invalid API key format"),
        ({"X-API-Key": "wak_" + "-" * 32}, "INVALID_API_KEY_FORMAT", "Invalid API key format"),
        ({"X-API-Key": "wak_" + "A" * 32}, "INVALID_API_KEY", "Invalid API key"),
    ],
)
async def test_key_failures_are_401(
    client: httpx.AsyncClient, headers: dict[str, str], code: str, error: str
) -> None:
    response = await client.get(POLL, headers=headers | {"X-Agent-ID": AGENT_ID})
    assert response.status_code == 401
    assert response.json() == {"error": error, "code": code}
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_a_revoked_key_is_invalid(
    client: httpx.AsyncClient, caller: Caller, db: Session
) -> None:
    revoke_api_key(db, key_id=key_row(db, caller.key).id)
    response = await client.get(POLL, headers=caller.headers())
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid API key", "code": "INVALID_API_KEY"}


async def test_a_key_without_training_scope_is_403(
    client: httpx.AsyncClient, make_key: MakeKey
) -> None:
    caller = make_key(scopes=("production", "testing"))
    response = await client.get(POLL, headers=caller.headers())
    assert response.status_code == 403
    assert response.json() == {
        "error": "API key does not have 'training' scope. Key scopes: production, testing",
        "code": "INSUFFICIENT_SCOPE",
    }


async def test_scope_all_grants_training(client: httpx.AsyncClient, make_key: MakeKey) -> None:
    caller = make_key(scopes=("all",))
    assert (await client.get(POLL, headers=caller.headers())).status_code == 200


async def test_last_used_at_is_written_at_most_once_a_minute(
    client: httpx.AsyncClient, caller: Caller, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every poll authenticates in the database here (a poll the cache answers reads no
    # key, so last_used_at then follows at most a cache lifetime later).
    monkeypatch.setattr(poll_cache, "KEY_TTL_S", 0.0)
    assert key_row(db, caller.key).last_used_at is None
    await client.get(POLL, headers=caller.headers())
    first = key_row(db, caller.key).last_used_at
    assert first is not None

    await client.get(POLL, headers=caller.headers())
    assert key_row(db, caller.key).last_used_at == first

    row = key_row(db, caller.key)
    row.last_used_at = utcnow() - timedelta(minutes=2)
    db.commit()
    await client.get(POLL, headers=caller.headers())
    refreshed = key_row(db, caller.key).last_used_at
    assert refreshed is not None and refreshed > first


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("PATCH", "status", {"status": "running"}),
        ("PUT", "metrics", {"step": 1, "epoch": 0}),
        ("POST", "logs", {"logs": ["x"]}),
    ],
)
async def test_job_token_failures(
    client: httpx.AsyncClient,
    make_running_job: MakeRunningJob,
    method: str,
    suffix: str,
    body: dict[str, object],
) -> None:
    job, token = make_running_job()
    url = f"/api/training/local/{job.id}/{suffix}"

    async def call(job_url: str, headers: dict[str, str]) -> httpx.Response:
        return await client.request(method, job_url, json=body, headers=headers)

    missing = await call(url, {})
    not_bearer = await call(url, {"Authorization": token})
    unknown = await call(f"/api/training/local/nope/{suffix}", bearer(token))
    wrong = await call(url, bearer("x" * 43))
    right = await call(url, bearer(token))

    required = {"error": "Unauthorized: Bearer token required", "code": "MISSING_TOKEN"}
    assert (missing.status_code, missing.json()) == (401, required)
    assert (not_bearer.status_code, not_bearer.json()) == (401, required)
    assert (unknown.status_code, unknown.json()) == (
        404,
        {"error": "Job not found", "code": "JOB_NOT_FOUND"},
    )
    assert (wrong.status_code, wrong.json()) == (
        401,
        {"error": "Unauthorized: Invalid token", "code": "INVALID_TOKEN"},
    )
    assert right.status_code == 200


async def test_an_unclaimed_job_has_no_token_that_works(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob
) -> None:
    job, _ = make_running_job(job_token_hash=None)
    response = await client.patch(
        f"/api/training/local/{job.id}/status", json={"status": "running"}, headers=bearer("x" * 43)
    )
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_TOKEN"


async def test_the_api_key_is_not_a_job_token(
    client: httpx.AsyncClient, caller: Caller, make_running_job: MakeRunningJob
) -> None:
    job, _ = make_running_job()
    response = await client.patch(
        f"/api/training/local/{job.id}/status",
        json={"status": "running"},
        headers=bearer(caller.key),
    )
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_TOKEN"
