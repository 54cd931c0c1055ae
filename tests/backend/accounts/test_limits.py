"""Limits one credential or one account cannot get past: requests per job token, and
per-user quotas for datasets (count and bytes), API keys and pending enrollments."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.backend.accounts.conftest import Member
from tests.backend.support import JSON, MakeRunningJob, bearer
from training_backend.ratelimit import JobRateLimit
from training_backend.settings import BackendSettings

DATASETS = "/api/training/datasets"
KEYS = "/api/user/api-keys"
ENROLLMENTS = "/api/workers/enrollments"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def with_settings(app: FastAPI, **changes: Any) -> None:
    settings: BackendSettings = app.state.settings
    app.state.settings = settings.model_copy(update=changes)


async def test_a_job_tokens_requests_are_rate_limited_per_job(
    client: httpx.AsyncClient, app: FastAPI, make_running_job: MakeRunningJob
) -> None:
    clock = FakeClock()
    app.state.job_rate_limit = JobRateLimit(per_minute=60, burst=2, clock=clock)
    job, token = make_running_job()
    other, other_token = make_running_job()
    beat = f"/api/training/local/{job.id}/heartbeat"

    answers = [await client.post(beat, headers=bearer(token)) for _ in range(2)]
    limited = await client.post(beat, headers=bearer(token))
    batch = await client.post(
        "/api/training/local/metrics",
        json={"job_id": job.id, "metrics": [{"step": 1, "epoch": 0}]},
        headers=bearer(token) | JSON,
    )
    elsewhere = await client.post(
        f"/api/training/local/{other.id}/heartbeat", headers=bearer(other_token)
    )

    assert [answer.status_code for answer in answers] == [200, 200]
    assert limited.status_code == 429
    assert limited.json() == {
        "error": "Rate limit exceeded for this job's reports; try again in 1 s",
        "code": "RATE_LIMITED",
    }
    assert limited.headers["Retry-After"] == "1"
    assert batch.status_code == 429
    assert elsewhere.status_code == 200
    clock.now += 1
    assert (await client.post(beat, headers=bearer(token))).status_code == 200


async def test_a_wrong_job_token_spends_nothing(
    client: httpx.AsyncClient, app: FastAPI, make_running_job: MakeRunningJob
) -> None:
    app.state.job_rate_limit = JobRateLimit(per_minute=60, burst=1, clock=FakeClock())
    job, token = make_running_job()
    beat = f"/api/training/local/{job.id}/heartbeat"
    for _ in range(3):
        assert (await client.post(beat, headers=bearer("not-the-token"))).status_code == 401
    assert (await client.post(beat, headers=bearer(token))).status_code == 200


def test_the_job_limit_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINING_BACKEND_JOB_RATE_LIMIT_PER_MINUTE", "0")
    settings = BackendSettings()
    assert settings.job_rate_limit_per_minute == 0
    limit = JobRateLimit(per_minute=0, burst=1)
    for _ in range(1000):
        limit.check("job")  # 0: no limit


async def upload(client: httpx.AsyncClient, member: Member, size: int) -> httpx.Response:
    return await client.post(DATASETS, content=b"x" * size, headers=member.headers())


async def test_datasets_are_limited_in_number(
    client: httpx.AsyncClient, app: FastAPI, member: Member
) -> None:
    with_settings(app, max_datasets_per_user=2)
    assert [(await upload(client, member, 10)).status_code for _ in range(2)] == [201, 201]

    refused = await upload(client, member, 10)

    assert refused.status_code == 409
    assert refused.json() == {
        "error": "You have 2 datasets, the most this backend keeps per user "
        "(TRAINING_BACKEND_MAX_DATASETS_PER_USER); delete one before uploading another",
        "code": "QUOTA_EXCEEDED",
        "limit": 2,
    }


async def test_datasets_are_limited_in_bytes_and_nothing_is_left_on_disk(
    client: httpx.AsyncClient, app: FastAPI, member: Member, settings: BackendSettings
) -> None:
    with_settings(app, max_dataset_storage_bytes_per_user=100)
    assert (await upload(client, member, 60)).status_code == 201

    refused = await upload(client, member, 41)

    assert (refused.status_code, refused.json()["code"]) == (409, "QUOTA_EXCEEDED")
    assert "TRAINING_BACKEND_MAX_DATASET_STORAGE_BYTES_PER_USER" in refused.json()["error"]
    assert settings.datasets_dir is not None
    stored = [p for p in Path(settings.datasets_dir).iterdir()]
    assert len(stored) == 1 and not stored[0].name.startswith(".")
    assert (await upload(client, member, 40)).status_code == 201


async def test_api_keys_are_limited_even_when_asked_for_at_once(
    client: httpx.AsyncClient, app: FastAPI, member: Member
) -> None:
    with_settings(app, max_api_keys_per_user=3)
    answers = await asyncio.gather(
        *(client.post(KEYS, json={"name": f"k{n}"}, headers=member.headers()) for n in range(8))
    )

    codes = sorted(answer.status_code for answer in answers)
    assert codes == [201] * 3 + [409] * 5
    refused = next(answer for answer in answers if answer.status_code == 409)
    assert "TRAINING_BACKEND_MAX_API_KEYS_PER_USER" in refused.json()["error"]
    key_id = next(a.json()["apiKey"]["id"] for a in answers if a.status_code == 201)
    assert (await client.delete(f"{KEYS}/{key_id}", headers=member.headers())).is_success
    assert (await client.post(KEYS, json={"name": "again"}, headers=member.headers())).is_success


async def test_pending_enrollments_are_limited(
    client: httpx.AsyncClient, app: FastAPI, member: Member
) -> None:
    with_settings(app, max_pending_enrollments_per_user=2)
    made = [await client.post(ENROLLMENTS, headers=member.headers()) for _ in range(2)]
    refused = await client.post(ENROLLMENTS, headers=member.headers())

    assert [answer.status_code for answer in made] == [201, 201]
    assert (refused.status_code, refused.json()["code"]) == (409, "QUOTA_EXCEEDED")
    assert "revoke some on the Training Agent page" in refused.json()["error"]
    first = made[0].json()["enrollment"]["id"]
    assert (await client.delete(f"{ENROLLMENTS}/{first}", headers=member.headers())).is_success
    assert (await client.post(ENROLLMENTS, headers=member.headers())).status_code == 201
