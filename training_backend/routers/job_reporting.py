"""Job reporting: status, metrics and logs an agent sends with the job's token."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.orm import Session

from training_backend.db.models import TrainingJob
from training_backend.db.types import utcnow
from training_backend.deps import DbSession, JobFromToken, JobToken, JsonObject
from training_backend.routing import DbRoute
from training_backend.schemas.reports import (
    LogAppend,
    LogsAppended,
    MetricPoint,
    MetricsBatch,
    MetricsRecorded,
    NothingToAppend,
    StatusUpdate,
    StatusUpdated,
)
from training_backend.services.job_tokens import authenticate_job
from training_backend.services.logs import append_logs, check_request_size
from training_backend.services.metrics import record_metrics
from training_backend.services.status import update_status

router = APIRouter(prefix="/api/training/local", tags=["job reporting"], route_class=DbRoute)

MAX_POINTS_PER_BATCH = 5_000


@router.patch("/{job_id}/status")
def report_status(job: JobFromToken, body: JsonObject, db: DbSession) -> StatusUpdated:
    """Move the job to a new status (or confirm the one it has)."""
    report = StatusUpdate.parse(body)
    updated = update_status(db, job=job, report=report, now=utcnow())
    return StatusUpdated(status=updated.status, updated_at=updated.updated_at)


@router.put("/{job_id}/metrics")
def report_metric(job: JobFromToken, body: JsonObject, db: DbSession) -> MetricsRecorded:
    """Store one metric point (a re-sent step replaces its earlier values)."""
    point = MetricPoint.parse(body)
    recorded = record_metrics(db, job_id=job.id, points=[point], now=utcnow())
    return MetricsRecorded(recorded=recorded)


@router.post("/metrics")
def report_metrics_batch(token: JobToken, body: JsonObject, db: DbSession) -> MetricsRecorded:
    """Store several points of the job named in the body (the token must be its token)."""
    batch = MetricsBatch.parse(body, max_points=MAX_POINTS_PER_BATCH)
    job = authenticate_job(db, job_id=batch.job_id, token=token)
    recorded = record_metrics(db, job_id=job.id, points=batch.points, now=utcnow())
    return MetricsRecorded(recorded=recorded)


@router.post("/{job_id}/logs")
def report_logs(
    job: JobFromToken, body: JsonObject, db: DbSession
) -> LogsAppended | NothingToAppend:
    """Append log lines; with ``offset``, lines already stored are skipped."""
    request = LogAppend.parse(body)
    if not request.lines:
        return NothingToAppend()
    return _append(db, job=job, request=request)


def _append(db: Session, *, job: TrainingJob, request: LogAppend) -> LogsAppended:
    check_request_size(request.lines)
    appended, total = append_logs(
        db, job_id=job.id, lines=request.lines, offset=request.offset, now=utcnow()
    )
    return LogsAppended(logs_appended=appended, total_logs=total)
