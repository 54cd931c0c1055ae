"""PATCH /api/training/local/{id}/status: transitions, idempotency and job details."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from tests.backend.support import MakeRunningJob, bearer, reload
from training_backend.job_status import ALLOWED_TRANSITIONS, JobStatus

REPORTABLE = ["running", "completed", "failed", "cancelled", "paused"]


def status_url(job_id: str) -> str:
    return f"/api/training/local/{job_id}/status"


async def patch(
    client: httpx.AsyncClient, job_id: str, token: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.patch(status_url(job_id), json=body, headers=bearer(token))


async def test_report_answers_success_status_and_updated_at(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, db: Session
) -> None:
    job, token = make_running_job()
    response = await patch(client, job.id, token, {"status": "completed"})
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True and body["status"] == "completed"
    stored = reload(db, job)
    assert datetime.fromisoformat(body["updated_at"]) == stored.updated_at
    assert stored.status == "completed"


def transitions() -> list[tuple[str, str, bool]]:
    cases = []
    for current in JobStatus:
        for new in REPORTABLE:
            allowed = new == current.value or JobStatus(new) in ALLOWED_TRANSITIONS[current]
            cases.append((current.value, new, allowed))
    return cases


@pytest.mark.parametrize(("current", "new", "allowed"), transitions())
async def test_transition_table(
    client: httpx.AsyncClient,
    make_running_job: MakeRunningJob,
    current: str,
    new: str,
    allowed: bool,
) -> None:
    job, token = make_running_job(status=current)
    response = await patch(client, job.id, token, {"status": new})
    if allowed:
        assert response.status_code == 200, response.json()
    else:
        assert response.status_code == 409
        body = response.json()
        assert body["code"] == "INVALID_TRANSITION"
        assert current in body["error"] and new in body["error"]


def test_the_table_is_the_designed_one() -> None:
    S = JobStatus
    assert {
        S.PENDING: {S.RUNNING, S.CANCELLED},
        S.RUNNING: {S.PAUSED, S.COMPLETED, S.FAILED, S.CANCELLED},
        S.PAUSED: {S.RUNNING, S.CANCELLED, S.FAILED},
        S.COMPLETED: set(),
        S.FAILED: set(),
        S.CANCELLED: set(),
    } == ALLOWED_TRANSITIONS


async def test_a_retried_terminal_report_is_a_no_op_that_keeps_completed_at(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, db: Session
) -> None:
    job, token = make_running_job()
    await patch(client, job.id, token, {"status": "failed", "error": "boom"})
    completed_at = reload(db, job).completed_at
    assert completed_at is not None

    again = await patch(client, job.id, token, {"status": "failed", "error": "boom"})

    assert again.status_code == 200
    assert reload(db, job).completed_at == completed_at


@pytest.mark.parametrize("status", ["queued", "pending", "", None, 3, "RUNNING"])
async def test_an_invalid_status_is_400(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, status: object
) -> None:
    job, token = make_running_job()
    response = await patch(client, job.id, token, {"status": status})
    assert response.status_code == 400
    assert response.json() == {
        "error": "Invalid status. Must be one of: running, completed, failed, cancelled, paused",
        "code": "INVALID_STATUS_VALUE",
    }


async def test_a_missing_status_is_400_too(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob
) -> None:
    job, token = make_running_job()
    response = await patch(client, job.id, token, {"error": "x"})
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_STATUS_VALUE"


async def test_the_error_goes_to_error_message_not_into_config(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, db: Session
) -> None:
    job, token = make_running_job()
    config = dict(job.config)
    await patch(client, job.id, token, {"status": "failed", "error": "CUDA out of memory"})
    stored = reload(db, job)
    assert stored.error_message == "CUDA out of memory"
    assert stored.config == config


async def test_job_details_totals_exit_code_and_outputs_are_stored(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, db: Session
) -> None:
    job, token = make_running_job(current_step=50)
    await patch(client, job.id, token, {"status": "running", "total_steps": 200, "total_epochs": 2})
    stored = reload(db, job)
    assert (stored.total_steps, stored.total_epochs, stored.progress) == (200, 2.0, 25.0)

    outputs = {"adapter": "out/adapter", "files": ["a.bin"]}
    body = {"status": "completed", "exit_code": 0, "outputs": outputs}
    await patch(client, job.id, token, body)
    stored = reload(db, job)
    assert (stored.exit_code, stored.outputs) == (0, outputs)
    assert stored.completed_at is not None


async def test_running_sets_started_at_only_when_missing(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, db: Session
) -> None:
    job, token = make_running_job(started_at=None)
    await patch(client, job.id, token, {"status": "running"})
    first = reload(db, job).started_at
    assert first is not None
    await patch(client, job.id, token, {"status": "paused"})
    await patch(client, job.id, token, {"status": "running"})
    assert reload(db, job).started_at == first


@pytest.mark.parametrize(
    "body",
    [
        {"status": "running", "total_steps": -1},
        {"status": "running", "total_steps": "10"},
        {"status": "running", "total_steps": 2**40},
        {"status": "failed", "exit_code": 1.5},
        {"status": "failed", "error": ["not", "text"]},
        {"status": "completed", "outputs": "not an object"},
    ],
)
async def test_bad_details_are_400_invalid_request(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, body: dict[str, Any]
) -> None:
    job, token = make_running_job()
    response = await patch(client, job.id, token, body)
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_REQUEST"
