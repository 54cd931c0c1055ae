"""Jobs as their owner sees them: submit, status, metrics and logs (API key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from training_backend.body import validate
from training_backend.db.types import utcnow
from training_backend.deps import CurrentApiKey, DbSession, JsonObject
from training_backend.routing import DbRoute
from training_backend.schemas.jobs import (
    JobCreate,
    JobCreated,
    JobPublic,
    JobStatusView,
    LogsPage,
    MetricRow,
    MetricsPage,
)
from training_backend.services.jobs import create_job, get_owned_job
from training_backend.services.logs import read_logs
from training_backend.services.metrics import list_metrics

router = APIRouter(prefix="/api/training", tags=["jobs"], route_class=DbRoute)

MAX_LOG_PAGE = 10_000
INT32_MAX = 2_147_483_647


@router.post("/jobs", status_code=201)
def submit_job(key: CurrentApiKey, body: JsonObject, db: DbSession) -> JobCreated:
    """Queue a job for the caller's agents."""
    spec = validate(JobCreate, body)
    job = create_job(db, user_id=key.user_id, now=utcnow(), **spec.model_dump())
    return JobCreated(job=JobPublic.of(job))


@router.get("/local/{job_id}/status")
def job_status(job_id: str, key: CurrentApiKey, db: DbSession) -> JobStatusView:
    """The job's state and latest metrics (404 for someone else's job)."""
    job = get_owned_job(db, job_id=job_id, user_id=key.user_id)
    return JobStatusView.of(job, now=utcnow())


@router.get("/local/{job_id}/metrics")
def job_metrics(job_id: str, key: CurrentApiKey, db: DbSession) -> MetricsPage:
    """Every metric point of the job, by step."""
    job = get_owned_job(db, job_id=job_id, user_id=key.user_id)
    rows = list_metrics(db, job_id=job.id)
    return MetricsPage(job_id=job.id, metrics=[MetricRow.of(row) for row in rows])


@router.get("/local/{job_id}/logs")
def job_logs(
    job_id: str,
    key: CurrentApiKey,
    db: DbSession,
    limit: Annotated[int, Query(ge=1, le=MAX_LOG_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
) -> LogsPage:
    """A page of the job's log lines."""
    job = get_owned_job(db, job_id=job_id, user_id=key.user_id)
    lines = read_logs(db, job_id=job.id, offset=offset, limit=limit)
    return LogsPage(logs=lines, total_lines=job.log_line_count, offset=offset, limit=limit)
