"""Jobs as their owner sees them: submit, status, metrics; and /healthz."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest

from tests.backend.support import Caller, MakeJob, MakeKey, MakeRunningJob, bearer
from training_backend import __version__

JOBS = "/api/training/jobs"


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.json() == {"status": "ok", "version": __version__}


async def test_submit_creates_a_pending_job(client: httpx.AsyncClient, caller: Caller) -> None:
    body = {"model_name": "m", "dataset_path": "d.jsonl", "config": {"type": "command"}}
    response = await client.post(JOBS, json=body, headers=caller.headers())

    assert response.status_code == 201
    job = response.json()["job"]
    assert job["status"] == "pending"
    assert (job["model_name"], job["dataset_path"], job["config"]) == (
        "m",
        "d.jsonl",
        body["config"],
    )
    assert job["agent_id"] is None
    poll = await client.get("/api/training/agent/poll", headers=caller.headers())
    assert poll.json()["job"]["id"] == job["id"]


async def test_only_config_is_required(client: httpx.AsyncClient, caller: Caller) -> None:
    response = await client.post(JOBS, json={"config": {}}, headers=caller.headers())
    assert response.status_code == 201
    assert response.json()["job"]["model_name"] is None


@pytest.mark.parametrize(
    "body",
    [{}, {"config": []}, {"config": "x"}, {"config": None}, {"config": {}, "model_name": 3}],
)
async def test_submit_needs_a_config_object(
    client: httpx.AsyncClient, caller: Caller, body: object
) -> None:
    response = await client.post(JOBS, json=body, headers=caller.headers())
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "INVALID_REQUEST"
    assert ("model_name" if "model_name" in body else "config") in error["error"]  # type: ignore[operator]


async def test_status_view(
    client: httpx.AsyncClient, caller: Caller, make_running_job: MakeRunningJob
) -> None:
    job, token = make_running_job(total_steps=100, total_epochs=2.0)
    await client.put(
        f"/api/training/local/{job.id}/metrics",
        json={"step": 50, "epoch": 1.0, "train_loss": 0.5, "perplexity": 3.0},
        headers=bearer(token),
    )
    response = await client.get(f"/api/training/local/{job.id}/status", headers=caller.headers())

    body = response.json()
    assert response.status_code == 200
    assert body["job_id"] == job.id
    assert body["status"] == "running"
    assert (body["current_step"], body["current_epoch"], body["loss"]) == (50, 1.0, 0.5)
    assert (body["total_steps"], body["total_epochs"], body["progress"]) == (100, 2.0, 50.0)
    assert body["eval_perplexity"] == 3.0
    assert body["agent_id"] == "agent_0123456789abcdef"
    assert body["elapsed_seconds"] >= 0
    assert body["error"] is None
    for key in ("learning_rate", "grad_norm", "gpu_memory_allocated_gb", "tokens_per_second"):
        assert key in body


async def test_status_of_a_failed_job_carries_error_exit_code_and_elapsed(
    client: httpx.AsyncClient, caller: Caller, make_running_job: MakeRunningJob
) -> None:
    started = datetime.now().astimezone() - timedelta(seconds=30)
    job, token = make_running_job(started_at=started)
    await client.patch(
        f"/api/training/local/{job.id}/status",
        json={"status": "failed", "error": "boom", "exit_code": 3},
        headers=bearer(token),
    )
    body = (
        await client.get(f"/api/training/local/{job.id}/status", headers=caller.headers())
    ).json()
    assert (body["status"], body["error"], body["exit_code"]) == ("failed", "boom", 3)
    assert 29 < body["elapsed_seconds"] < 60
    assert body["completed_at"] is not None


async def test_a_pending_job_has_no_progress_or_elapsed_time(
    client: httpx.AsyncClient, caller: Caller, make_job: MakeJob
) -> None:
    job = make_job()
    body = (
        await client.get(f"/api/training/local/{job.id}/status", headers=caller.headers())
    ).json()
    assert (body["progress"], body["elapsed_seconds"], body["started_at"]) == (0.0, 0.0, None)


async def test_metrics_are_listed_by_step(
    client: httpx.AsyncClient, caller: Caller, make_running_job: MakeRunningJob
) -> None:
    job, token = make_running_job()
    for step in (3, 1, 2):
        await client.put(
            f"/api/training/local/{job.id}/metrics",
            json={"step": step, "epoch": step / 10, "train_loss": float(step)},
            headers=bearer(token),
        )
    response = await client.get(f"/api/training/local/{job.id}/metrics", headers=caller.headers())
    body = response.json()
    assert body["job_id"] == job.id
    assert [m["step"] for m in body["metrics"]] == [1, 2, 3]
    assert body["metrics"][0]["train_loss"] == 1.0
    assert body["metrics"][0]["eval_loss"] is None


@pytest.mark.parametrize("what", ["status", "metrics", "logs"])
async def test_other_users_get_404(
    client: httpx.AsyncClient, make_job: MakeJob, make_key: MakeKey, what: str
) -> None:
    job = make_job()
    response = await client.get(
        f"/api/training/local/{job.id}/{what}", headers=make_key().headers()
    )
    assert response.status_code == 404
    assert response.json() == {"error": "Job not found", "code": "JOB_NOT_FOUND"}
