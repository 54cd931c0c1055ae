"""Job reporting: status, metrics, logs and heartbeats an agent sends with the job's
token, and the job's dataset it downloads with it.

Every call renews the job's lease (feature ``leases``) and every answer carries the
owner's pending request in ``control`` (feature ``heartbeat``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from training_backend.body import json_body, read_json_object
from training_backend.db.models import TrainingJob
from training_backend.db.types import utcnow
from training_backend.deps import DbSession, JobRateLimitDep, JobToken, JsonObject, SettingsDep
from training_backend.routing import DbRoute
from training_backend.schemas.agent import HeartbeatAnswer
from training_backend.schemas.reports import (
    Heartbeat,
    LogAppend,
    LogsAppended,
    MetricPoint,
    MetricsBatch,
    MetricsRecorded,
    NothingToAppend,
    StatusUpdate,
    StatusUpdated,
)
from training_backend.services.datasets import dataset_of_job, datasets_dir
from training_backend.services.heartbeats import record_heartbeat
from training_backend.services.job_tokens import authenticate_job
from training_backend.services.logs import append_logs, check_request_size
from training_backend.services.metrics import record_metrics
from training_backend.services.status import update_status

router = APIRouter(prefix="/api/training/local", tags=["job reporting"], route_class=DbRoute)

MAX_POINTS_PER_BATCH = 5_000


def leased_job(
    job_id: str, token: JobToken, db: DbSession, settings: SettingsDep, limit: JobRateLimitDep
) -> TrainingJob:
    """The job named in the path, if the bearer token is its token; renews its lease.

    Each job's requests are rate-limited (429 ``RATE_LIMITED``, setting
    ``job_rate_limit_per_minute``).
    """
    now = utcnow()
    job = authenticate_job(
        db, job_id=job_id, token=token, now=now, lease_seconds=settings.lease_seconds
    )
    db.commit()  # give the connection back before the next thread hop (see deps.get_db)
    limit.check(job.id)
    return job


LeasedJob = Annotated[TrainingJob, Depends(leased_job)]


async def optional_json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object, or ``{}`` when the request has no body at all."""
    no_body = request.headers.get("content-length", "0") == "0"
    if no_body and "transfer-encoding" not in request.headers:
        return {}
    return await read_json_object(request)


OptionalJsonObject = Annotated[dict[str, Any], Depends(optional_json_object)]


@router.patch("/{job_id}/status", openapi_extra=json_body(StatusUpdate))
def report_status(job: LeasedJob, body: JsonObject, db: DbSession) -> StatusUpdated:
    """Move the job to a new status (or confirm the one it has)."""
    report = StatusUpdate.parse(body)
    updated = update_status(db, job=job, report=report, now=utcnow())
    return StatusUpdated(
        status=updated.status, updated_at=updated.updated_at, control=updated.control
    )


@router.put("/{job_id}/metrics", openapi_extra=json_body(MetricPoint))
def report_metric(job: LeasedJob, body: JsonObject, db: DbSession) -> MetricsRecorded:
    """Store one metric point (a re-sent step replaces its earlier values)."""
    point = MetricPoint.parse(body)
    recorded = record_metrics(db, job_id=job.id, points=[point], now=utcnow())
    return MetricsRecorded(recorded=recorded, control=job.control)


@router.post("/metrics", openapi_extra=json_body(MetricsBatch))
def report_metrics_batch(
    token: JobToken,
    body: JsonObject,
    db: DbSession,
    settings: SettingsDep,
    limit: JobRateLimitDep,
) -> MetricsRecorded:
    """Store several points of the job named in the body (the token must be its token)."""
    batch = MetricsBatch.parse(body, max_points=MAX_POINTS_PER_BATCH)
    now = utcnow()
    job = authenticate_job(
        db, job_id=batch.job_id, token=token, now=now, lease_seconds=settings.lease_seconds
    )
    limit.check(job.id)
    recorded = record_metrics(db, job_id=job.id, points=batch.points, now=now)
    return MetricsRecorded(recorded=recorded, control=job.control)


@router.post("/{job_id}/logs", openapi_extra=json_body(LogAppend))
def report_logs(job: LeasedJob, body: JsonObject, db: DbSession) -> LogsAppended | NothingToAppend:
    """Append log lines; with ``offset``, lines already stored are skipped."""
    request = LogAppend.parse(body)
    if not request.lines:
        return NothingToAppend(control=job.control)
    return _append(db, job=job, request=request)


def _append(db: Session, *, job: TrainingJob, request: LogAppend) -> LogsAppended:
    check_request_size(request.lines)
    appended, total = append_logs(
        db, job_id=job.id, lines=request.lines, offset=request.offset, now=utcnow()
    )
    return LogsAppended(logs_appended=appended, total_logs=total, control=job.control)


@router.post("/{job_id}/heartbeat", openapi_extra=json_body(Heartbeat, required=False))
def heartbeat(
    job: LeasedJob, body: OptionalJsonObject, db: DbSession, settings: SettingsDep
) -> HeartbeatAnswer:
    """Renew the lease; the answer says whether the owner wants the job cancelled or paused.

    The body is optional: ``{"step": n, "progress": percent}`` moves the job's summary.
    """
    report = Heartbeat.parse(body)
    beat = record_heartbeat(
        db, job=job, report=report, now=utcnow(), lease_seconds=settings.lease_seconds
    )
    return HeartbeatAnswer(control=beat.control, lease_expires_at=beat.lease_expires_at)


@router.get("/{job_id}/dataset", response_class=FileResponse)
def download_dataset(job: LeasedJob, db: DbSession, settings: SettingsDep) -> FileResponse:
    """The job's dataset file, with its SHA-256 in ``X-Checksum-SHA256``."""
    dataset, path = dataset_of_job(db, job=job, directory=datasets_dir(settings))
    return FileResponse(
        path,
        filename=dataset.filename,
        media_type="application/octet-stream",
        headers={"X-Checksum-SHA256": dataset.sha256},
    )
