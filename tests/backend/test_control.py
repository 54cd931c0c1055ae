"""Heartbeat and control: the owner's cancel, pause and resume reach the agent as
``control`` in heartbeats and every job-token answer, and clear when the agent acts."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest
from sqlalchemy.orm import Session

from tests.backend.support import Caller, MakeJob, MakeKey, MakeRunningJob, bearer, reload
from training_backend.db.models import TrainingAgent
from training_backend.db.types import utcnow

LOCAL = "/api/training/local/{}"


async def control(
    client: httpx.AsyncClient, caller: Caller, job_id: str, action: str
) -> httpx.Response:
    return await client.post(
        f"{LOCAL.format(job_id)}/control", json={"action": action}, headers=caller.headers(None)
    )


async def test_a_heartbeat_renews_the_lease_and_answers_control(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, db: Session
) -> None:
    job, token = make_running_job()
    answer = await client.post(f"{LOCAL.format(job.id)}/heartbeat", headers=bearer(token))

    assert answer.status_code == 200
    body = answer.json()
    assert body["control"] is None
    assert datetime.fromisoformat(body["lease_expires_at"]) == reload(db, job).lease_expires_at
    assert reload(db, job).last_heartbeat_at is not None


async def test_a_heartbeat_may_carry_the_step_and_progress(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, db: Session
) -> None:
    job, token = make_running_job(total_steps=200)
    url = f"{LOCAL.format(job.id)}/heartbeat"
    await client.post(url, json={"step": 50}, headers=bearer(token))
    assert (reload(db, job).current_step, reload(db, job).progress) == (50, 25.0)
    await client.post(url, json={"step": 10, "progress": 5}, headers=bearer(token))
    assert reload(db, job).current_step == 50  # an older step never rolls it back


@pytest.mark.parametrize("body", [{"step": -1}, {"step": "ten"}, {"progress": 101}, []])
async def test_a_bad_heartbeat_body_is_400(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, body: object
) -> None:
    job, token = make_running_job()
    answer = await client.post(
        f"{LOCAL.format(job.id)}/heartbeat", json=body, headers=bearer(token)
    )
    assert answer.status_code == 400
    assert set(answer.json()) >= {"error", "code"}


async def test_a_heartbeat_for_a_finished_job_is_409(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob
) -> None:
    job, token = make_running_job(status="completed")
    answer = await client.post(f"{LOCAL.format(job.id)}/heartbeat", headers=bearer(token))
    assert (answer.status_code, answer.json()["code"]) == (409, "JOB_NOT_ACTIVE")


async def test_a_revoked_agent_gets_403_on_heartbeat_and_claim(
    client: httpx.AsyncClient,
    caller: Caller,
    make_running_job: MakeRunningJob,
    make_job: MakeJob,
    db: Session,
) -> None:
    job, token = make_running_job()
    assert job.agent_id is not None
    db.add(
        TrainingAgent(
            user_id=caller.user.id, agent_id=job.agent_id, revoked_at=utcnow(), metadata_={}
        )
    )
    db.commit()
    beat = await client.post(f"{LOCAL.format(job.id)}/heartbeat", headers=bearer(token))
    pending = make_job()
    claim = await client.post(
        f"/api/training/agent/claim/{pending.id}", headers=caller.headers(job.agent_id)
    )
    assert (beat.status_code, beat.json()["code"]) == (403, "AGENT_REVOKED")
    assert (claim.status_code, claim.json()["code"]) == (403, "AGENT_REVOKED")
    assert reload(db, pending).status == "pending"


async def test_cancelling_a_pending_job_cancels_it_at_once(
    client: httpx.AsyncClient, caller: Caller, make_job: MakeJob, db: Session
) -> None:
    job = make_job()
    answer = await control(client, caller, job.id, "cancel")
    assert answer.status_code == 200
    assert answer.json() == {
        "success": True,
        "job_id": job.id,
        "action": "cancel",
        "status": "cancelled",
        "control": None,
    }
    assert reload(db, job).completed_at is not None
    polled = await client.get("/api/training/agent/poll", headers=caller.headers())
    assert polled.json()["job"] is None


async def test_cancel_reaches_the_agent_in_every_answer_until_it_reports_cancelled(
    client: httpx.AsyncClient, caller: Caller, make_running_job: MakeRunningJob, db: Session
) -> None:
    job, token = make_running_job()
    url = LOCAL.format(job.id)
    assert (await control(client, caller, job.id, "cancel")).json()["control"] == "cancel"

    answers = [
        await client.post(f"{url}/heartbeat", headers=bearer(token)),
        await client.put(f"{url}/metrics", json={"step": 1, "epoch": 0}, headers=bearer(token)),
        await client.post(f"{url}/logs", json={"logs": ["x"]}, headers=bearer(token)),
        await client.post(f"{url}/logs", json={"logs": []}, headers=bearer(token)),
        await client.post(
            "/api/training/local/metrics",
            json={"job_id": job.id, "metrics": [{"step": 2, "epoch": 0}]},
            headers=bearer(token),
        ),
        await client.get(f"{url}/status", headers=caller.headers(None)),
    ]
    assert [answer.json()["control"] for answer in answers] == ["cancel"] * len(answers)

    done = await client.patch(f"{url}/status", json={"status": "cancelled"}, headers=bearer(token))
    assert done.json()["control"] is None
    assert (reload(db, job).status, reload(db, job).control) == ("cancelled", None)


async def test_pause_and_resume_round_trip(
    client: httpx.AsyncClient, caller: Caller, make_running_job: MakeRunningJob, db: Session
) -> None:
    job, token = make_running_job()
    status = f"{LOCAL.format(job.id)}/status"
    assert (await control(client, caller, job.id, "pause")).json()["control"] == "pause"
    paused = await client.patch(status, json={"status": "paused"}, headers=bearer(token))
    assert paused.json()["control"] is None
    assert (await control(client, caller, job.id, "resume")).json()["control"] == "resume"
    running = await client.patch(status, json={"status": "running"}, headers=bearer(token))
    assert running.json()["control"] is None
    assert reload(db, job).status == "running"


async def test_resume_withdraws_a_pause_the_agent_has_not_acted_on(
    client: httpx.AsyncClient, caller: Caller, make_running_job: MakeRunningJob
) -> None:
    job, _ = make_running_job()
    await control(client, caller, job.id, "pause")
    answer = await control(client, caller, job.id, "resume")
    assert (answer.json()["status"], answer.json()["control"]) == ("running", None)


@pytest.mark.parametrize(
    ("status", "control_before", "action", "sentence"),
    [
        ("completed", None, "cancel", "Job is already completed; there is nothing to cancel"),
        ("pending", None, "pause", "Only a running job can be paused; this one is pending"),
        ("running", None, "resume", "Only a paused job can be resumed; this one is running"),
        ("paused", None, "pause", "Only a running job can be paused; this one is paused"),
        ("running", "cancel", "pause", "Job is being cancelled; it cannot pause any more"),
    ],
)
async def test_control_that_makes_no_sense_is_409_with_a_sentence(
    client: httpx.AsyncClient,
    caller: Caller,
    make_job: MakeJob,
    status: str,
    control_before: str | None,
    action: str,
    sentence: str,
) -> None:
    job = make_job(status=status, control=control_before)
    answer = await control(client, caller, job.id, action)
    assert answer.status_code == 409
    assert answer.json()["code"] == "INVALID_CONTROL"
    assert answer.json()["error"] == sentence


@pytest.mark.parametrize("body", [{}, {"action": "stop"}, {"action": 1}])
async def test_a_bad_action_is_400(
    client: httpx.AsyncClient, caller: Caller, make_job: MakeJob, body: dict[str, object]
) -> None:
    job = make_job()
    answer = await client.post(
        f"{LOCAL.format(job.id)}/control", json=body, headers=caller.headers(None)
    )
    assert (answer.status_code, answer.json()["code"]) == (400, "INVALID_ACTION")
    assert answer.json()["error"] == "Invalid or missing action. Expected cancel, pause, or resume."


async def test_another_users_job_cannot_be_controlled(
    client: httpx.AsyncClient, make_key: MakeKey, make_job: MakeJob, db: Session
) -> None:
    job = make_job()
    answer = await control(client, make_key(), job.id, "cancel")
    assert (answer.status_code, answer.json()["code"]) == (404, "JOB_NOT_FOUND")
    assert reload(db, job).status == "pending"


async def test_control_needs_credentials(client: httpx.AsyncClient, make_job: MakeJob) -> None:
    job = make_job()
    answer = await client.post(f"{LOCAL.format(job.id)}/control", json={"action": "cancel"})
    assert answer.status_code == 401
