"""Metric reports: one point (PUT) or a batch (POST), upserted by (job, step)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.backend.support import JSON, MakeRunningJob, bearer, reload
from training_backend.db.models import TrainingMetric

BATCH = "/api/training/local/metrics"
INVALID_METRIC = {"error": "Invalid metric: step and epoch are required", "code": "INVALID_METRIC"}


def metric_url(job_id: str) -> str:
    return f"/api/training/local/{job_id}/metrics"


def stored_points(db: Session, job_id: str) -> list[TrainingMetric]:
    db.expire_all()
    query = select(TrainingMetric).where(TrainingMetric.job_id == job_id)
    return list(db.scalars(query.order_by(TrainingMetric.step)))


async def put(client: httpx.AsyncClient, job_id: str, token: str, point: Any) -> httpx.Response:
    return await client.put(metric_url(job_id), json=point, headers=bearer(token))


async def test_a_point_is_stored_and_moves_the_summary(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, db: Session
) -> None:
    job, token = make_running_job(total_steps=40)
    point = {
        "step": 10,
        "epoch": 0.5,
        "train_loss": 1.5,
        "eval_loss": 1.7,
        "learning_rate": 2e-5,
        "grad_norm": 0.9,
        "perplexity": 5.4,
        "train_perplexity": 4.5,
        "samples_per_second": 12.0,
        "tokens_per_second": 3000,
        "gpu_memory_allocated_gb": 7.5,
        "gpu_memory_reserved_gb": 8.0,
        "gpu_utilization_percent": 97,
        "some_future_metric": 1,
    }
    response = await put(client, job.id, token, point)

    assert response.status_code == 200
    assert response.json()["success"] is True
    [row] = stored_points(db, job.id)
    assert (row.step, row.epoch, row.train_loss, row.tokens_per_second) == (10, 0.5, 1.5, 3000.0)
    stored = reload(db, job)
    assert (stored.current_step, stored.current_epoch, stored.loss) == (10, 0.5, 1.5)
    assert (stored.eval_loss, stored.perplexity, stored.train_perplexity) == (1.7, 5.4, 4.5)
    assert stored.gpu_utilization_percent == 97.0
    assert stored.progress == 25.0


@pytest.mark.parametrize(
    "point",
    [
        {"epoch": 1},
        {"step": 1},
        {"step": 0, "epoch": 0},
        {"step": -3, "epoch": 0},
        {"step": "5", "epoch": 0},
        {"step": 1.5, "epoch": 0},
        {"step": True, "epoch": 0},
        {"step": 1, "epoch": "0.5"},
        {"step": 1, "epoch": None},
        {"step": 1, "epoch": False},
        {"step": 2**31, "epoch": 1},
    ],
)
async def test_step_and_epoch_are_required(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, point: dict[str, Any]
) -> None:
    job, token = make_running_job()
    response = await put(client, job.id, token, point)
    assert response.status_code == 400
    assert response.json() == INVALID_METRIC


async def test_a_non_numeric_metric_is_400_naming_it(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob
) -> None:
    job, token = make_running_job()
    response = await put(client, job.id, token, {"step": 1, "epoch": 0, "train_loss": "low"})
    assert response.status_code == 400
    assert response.json() == {
        "error": "Invalid metric: train_loss must be a number",
        "code": "INVALID_METRIC",
    }


async def test_a_resent_point_replaces_and_never_duplicates(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, db: Session
) -> None:
    job, token = make_running_job()
    await put(client, job.id, token, {"step": 5, "epoch": 0.1, "train_loss": 2.0})
    await put(client, job.id, token, {"step": 5, "epoch": 0.1, "train_loss": 1.9})
    [row] = stored_points(db, job.id)
    assert row.train_loss == 1.9


async def test_keys_missing_from_a_point_keep_stored_values(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, db: Session
) -> None:
    job, token = make_running_job()
    await put(client, job.id, token, {"step": 5, "epoch": 0.1, "train_loss": 2.0})
    await put(client, job.id, token, {"step": 5, "epoch": 0.1, "eval_loss": 2.5})
    [row] = stored_points(db, job.id)
    assert (row.train_loss, row.eval_loss) == (2.0, 2.5)


async def test_the_summary_follows_the_highest_step_and_is_never_erased(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, db: Session
) -> None:
    job, token = make_running_job()
    await put(client, job.id, token, {"step": 10, "epoch": 1, "train_loss": 1.0, "eval_loss": 1.2})
    await put(client, job.id, token, {"step": 20, "epoch": 2, "train_loss": 0.8})
    await put(client, job.id, token, {"step": 15, "epoch": 1.5, "train_loss": 5.0})

    stored = reload(db, job)
    assert (stored.current_step, stored.current_epoch, stored.loss) == (20, 2.0, 0.8)
    assert stored.eval_loss == 1.2
    assert [p.step for p in stored_points(db, job.id)] == [10, 15, 20]


async def test_progress_waits_for_total_steps_and_caps_at_100(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, db: Session
) -> None:
    job, token = make_running_job()
    await put(client, job.id, token, {"step": 30, "epoch": 1})
    assert reload(db, job).progress is None
    await client.patch(
        f"/api/training/local/{job.id}/status",
        json={"status": "running", "total_steps": 20},
        headers=bearer(token),
    )
    assert reload(db, job).progress == 100.0


async def test_non_finite_values_are_stored_as_absent(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, db: Session
) -> None:
    job, token = make_running_job()
    body = b'{"step": 3, "epoch": 1, "train_loss": NaN, "grad_norm": Infinity}'
    response = await client.put(metric_url(job.id), content=body, headers=bearer(token) | JSON)
    assert response.status_code == 200
    [row] = stored_points(db, job.id)
    assert (row.train_loss, row.grad_norm) == (None, None)


async def test_a_batch_is_stored_with_the_same_rules(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, db: Session
) -> None:
    job, token = make_running_job()
    points = [
        {"step": 1, "epoch": 0.1, "train_loss": 3.0},
        {"step": 2, "epoch": 0.2, "train_loss": 2.0, "eval_loss": 2.2},
        {"step": 2, "epoch": 0.2, "learning_rate": 1e-4},
        {"step": 3, "epoch": 0.3, "train_loss": 1.0},
    ]
    response = await client.post(
        BATCH, json={"job_id": job.id, "metrics": points}, headers=bearer(token)
    )

    assert response.status_code == 200
    rows = stored_points(db, job.id)
    assert [(r.step, r.train_loss) for r in rows] == [(1, 3.0), (2, 2.0), (3, 1.0)]
    assert (rows[1].eval_loss, rows[1].learning_rate) == (2.2, 1e-4)
    stored = reload(db, job)
    assert (stored.current_step, stored.loss, stored.eval_loss) == (3, 1.0, 2.2)


async def test_a_large_batch_is_fast(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, db: Session
) -> None:
    job, token = make_running_job()
    points = [{"step": s, "epoch": s / 100, "train_loss": 1 / s} for s in range(1, 1001)]
    started = time.monotonic()
    response = await client.post(
        BATCH, json={"job_id": job.id, "metrics": points}, headers=bearer(token)
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert len(stored_points(db, job.id)) == 1000
    assert elapsed < 2.0


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"metrics": [{"step": 1, "epoch": 0}]}, "INVALID_REQUEST"),
        ({"job_id": "JOB"}, "INVALID_REQUEST"),
        ({"job_id": "JOB", "metrics": []}, "INVALID_REQUEST"),
        ({"job_id": "JOB", "metrics": {"step": 1}}, "INVALID_REQUEST"),
        ({"job_id": "JOB", "metrics": [{"step": 1, "epoch": 0}, {"epoch": 1}]}, "INVALID_METRIC"),
    ],
)
async def test_bad_batches_are_400(
    client: httpx.AsyncClient,
    make_running_job: MakeRunningJob,
    body: dict[str, Any],
    code: str,
) -> None:
    job, token = make_running_job()
    if body.get("job_id") == "JOB":
        body["job_id"] = job.id
    response = await client.post(BATCH, json=body, headers=bearer(token))
    assert response.status_code == 400
    assert response.json()["code"] == code


async def test_a_bad_point_in_a_batch_names_its_index_and_stores_nothing(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, db: Session
) -> None:
    job, token = make_running_job()
    points = [{"step": 1, "epoch": 0}, {"step": 0, "epoch": 0}]
    response = await client.post(
        BATCH, json={"job_id": job.id, "metrics": points}, headers=bearer(token)
    )
    assert response.json() == INVALID_METRIC | {"index": 1}
    assert stored_points(db, job.id) == []


async def test_a_batch_must_carry_the_tokens_job(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob
) -> None:
    job, _ = make_running_job()
    _, other_token = make_running_job()
    response = await client.post(
        BATCH,
        json={"job_id": job.id, "metrics": [{"step": 1, "epoch": 0}]},
        headers=bearer(other_token),
    )
    assert response.status_code == 401
    assert response.json() == {"error": "Unauthorized: Invalid token", "code": "INVALID_TOKEN"}


async def test_a_batch_for_an_unknown_job_is_404(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob
) -> None:
    _, token = make_running_job()
    response = await client.post(
        BATCH,
        json={"job_id": "missing", "metrics": [{"step": 1, "epoch": 0}]},
        headers=bearer(token),
    )
    assert response.status_code == 404
    assert response.json()["code"] == "JOB_NOT_FOUND"


async def test_a_batch_without_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post(BATCH, json={"job_id": "x", "metrics": []})
    assert response.status_code == 401
    assert response.json()["code"] == "MISSING_TOKEN"


async def test_a_batch_older_than_the_summary_leaves_it_alone(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, db: Session
) -> None:
    job, token = make_running_job()
    await put(client, job.id, token, {"step": 10, "epoch": 1, "train_loss": 0.5, "eval_loss": 0.6})
    points = [
        {"step": 4, "epoch": 0.4, "eval_loss": 9.0},
        {"step": 12, "epoch": 1.2, "train_loss": 0.4},
    ]
    await client.post(BATCH, json={"job_id": job.id, "metrics": points}, headers=bearer(token))

    stored = reload(db, job)
    assert (stored.current_step, stored.loss, stored.eval_loss) == (12, 0.4, 0.6)

    late = [{"step": 2, "epoch": 0.2, "train_loss": 7.0}]
    await client.post(BATCH, json={"job_id": job.id, "metrics": late}, headers=bearer(token))
    assert (reload(db, job).current_step, reload(db, job).loss) == (12, 0.4)
