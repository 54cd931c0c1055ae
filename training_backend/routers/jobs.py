"""Jobs as their owner sees them: submit, control, status, metrics, logs; and datasets.

Owner routes take an API key (``training`` scope) or a signed-in session where noted.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from training_backend.body import json_body, validate
from training_backend.db.types import utcnow
from training_backend.deps import (
    ApiKeyOrUser,
    ApiKeyRateLimitDep,
    DbSession,
    JsonObject,
    Principal,
    SessionFactoryDep,
    SettingsDep,
    WakeupsDep,
    api_key_or_user,
)
from training_backend.errors import ApiError
from training_backend.ratelimit import ApiKeyRateLimit
from training_backend.routing import DbRoute
from training_backend.schemas.agent import ControlAnswer
from training_backend.schemas.jobs import (
    DatasetCreated,
    DatasetPublic,
    JobCreate,
    JobCreated,
    JobPublic,
    JobsPage,
    JobStatusView,
    JobSummary,
    LogsPage,
    MetricRow,
    MetricsPage,
)
from training_backend.schemas.reports import ControlRequest
from training_backend.services.control import ControlAction, request_control
from training_backend.services.datasets import (
    DatasetQuota,
    DatasetUpload,
    dataset_too_large,
    datasets_dir,
)
from training_backend.services.jobs import (
    create_job,
    dataset_of,
    get_owned_job,
    job_signal,
    list_jobs,
)
from training_backend.services.logs import read_logs
from training_backend.services.metric_series import series_by_step
from training_backend.services.metrics import list_metrics
from training_backend.services.waiting import waiting_reasons
from training_backend.services.wakeups import Signal
from training_backend.settings import BackendSettings

router = APIRouter(prefix="/api/training", tags=["jobs"], route_class=DbRoute)

MAX_LOG_PAGE = 10_000
MAX_JOBS_PAGE = 200
INT32_MAX = 2_147_483_647
#: Bytes gathered from the request before each write of an upload to disk.
UPLOAD_WRITE_BYTES = 1024 * 1024


@router.post("/jobs", status_code=201, openapi_extra=json_body(JobCreate))
def submit_job(
    caller: ApiKeyOrUser, body: JsonObject, db: DbSession, wakeups: WakeupsDep
) -> JobCreated:
    """Queue a job for the caller's agents (and wake their long polls)."""
    spec = validate(JobCreate, body)
    job = create_job(db, user_id=caller.user_id, now=utcnow(), **spec.model_dump())
    wakeups.deliver(job_signal(job))
    return JobCreated(job=JobPublic.of(job, dataset=dataset_of(db, job)))


@router.get("/jobs")
def jobs_page(
    caller: ApiKeyOrUser,
    db: DbSession,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=MAX_JOBS_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
) -> JobsPage:
    """The caller's jobs, newest first, a page at a time; a pending one says what it
    waits for (``waiting_for``)."""
    jobs, total = list_jobs(db, user_id=caller.user_id, limit=limit, offset=offset)
    reasons = waiting_reasons(
        db, user_id=caller.user_id, jobs=jobs, now=utcnow(), threshold=_online(settings)
    )
    summaries = [
        JobSummary.model_validate(job).model_copy(update={"waiting_for": reasons.get(job.id)})
        for job in jobs
    ]
    return JobsPage(jobs=summaries, total=total, limit=limit, offset=offset)


def _online(settings: BackendSettings) -> timedelta:
    return timedelta(seconds=settings.online_threshold_seconds)


@router.post("/local/{job_id}/control", openapi_extra=json_body(ControlRequest))
def control_job(
    job_id: str, caller: ApiKeyOrUser, body: JsonObject, db: DbSession, wakeups: WakeupsDep
) -> ControlAnswer:
    """Cancel, pause or resume a job: a pending job is cancelled at once; a held job's
    agent sees the request as ``control`` in its next heartbeat or report (and a poll it
    holds answers at once, so it polls again with its capacity as it now is)."""
    action = ControlAction(ControlRequest.parse(body).action)
    job = request_control(db, job_id=job_id, user_id=caller.user_id, action=action, now=utcnow())
    if action == ControlAction.CANCEL and job.agent_id is not None:
        wakeups.deliver(Signal.agent(job.user_id, job.agent_id))
    return ControlAnswer(job_id=job.id, action=action.value, status=job.status, control=job.control)


@router.get("/local/{job_id}/status")
def job_status(
    job_id: str, caller: ApiKeyOrUser, db: DbSession, settings: SettingsDep
) -> JobStatusView:
    """The job's state, pending control and latest metrics (404 for someone else's job);
    a pending job says what it waits for (``waiting_for``)."""
    job = get_owned_job(db, job_id=job_id, user_id=caller.user_id)
    now = utcnow()
    reasons = waiting_reasons(
        db, user_id=caller.user_id, jobs=[job], now=now, threshold=_online(settings)
    )
    return JobStatusView.of(job, now=now, waiting_for=reasons.get(job.id))


@router.get("/local/{job_id}/metrics")
def job_metrics(
    job_id: str,
    caller: ApiKeyOrUser,
    db: DbSession,
    after_step: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
) -> MetricsPage:
    """The job's metric points by step; ``after_step`` keeps only later ones (a page
    that already holds the earlier points asks for the rest)."""
    job = get_owned_job(db, job_id=job_id, user_id=caller.user_id)
    rows = list_metrics(db, job_id=job.id, after_step=after_step)
    series = series_by_step(db, job_id=job.id, after_step=after_step)
    metrics = [MetricRow.of(row, series.get(row.step)) for row in rows]
    return MetricsPage(job_id=job.id, metrics=metrics)


@router.get("/local/{job_id}/logs")
def job_logs(
    job_id: str,
    caller: ApiKeyOrUser,
    db: DbSession,
    limit: Annotated[int, Query(ge=1, le=MAX_LOG_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
) -> LogsPage:
    """A page of the job's log lines."""
    job = get_owned_job(db, job_id=job_id, user_id=caller.user_id)
    lines = read_logs(db, job_id=job.id, offset=offset, limit=limit)
    return LogsPage(logs=lines, total_lines=job.log_line_count, offset=offset, limit=limit)


def _caller(
    request: Request,
    sessions: sessionmaker[Session],
    limit: ApiKeyRateLimit,
    settings: BackendSettings,
) -> Principal:
    with sessions() as db:
        return api_key_or_user(request, db, limit, settings)


def _check_upload(request: Request, max_bytes: int) -> int:
    """The declared size of an acceptable upload (0 when not declared)."""
    if request.headers.get("content-type", "").lower().startswith("multipart/"):
        message = "Send the dataset file itself as the request body, not as a multipart form"
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", message)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise dataset_too_large(max_bytes)
    return int(declared) if declared.isdigit() else 0


def _precheck_quota(
    sessions: sessionmaker[Session], quota: DatasetQuota, user_id: str, declared: int
) -> None:
    # Refuse before receiving a byte when the quota is already used up; ``_save`` checks
    # again, under the user's lock, once the size is known.
    with sessions() as db:
        quota.check(db, user_id=user_id, adding_bytes=declared)


def _save(
    sessions: sessionmaker[Session],
    upload: DatasetUpload,
    user_id: str,
    filename: str | None,
    quota: DatasetQuota,
) -> DatasetPublic:
    with sessions() as db:
        dataset = upload.save(db, user_id=user_id, filename=filename, now=utcnow(), quota=quota)
        return DatasetPublic.model_validate(dataset)


@router.post("/datasets", status_code=201)
async def upload_dataset(
    request: Request,
    settings: SettingsDep,
    sessions: SessionFactoryDep,
    rate_limit: ApiKeyRateLimitDep,
    filename: Annotated[str | None, Query(max_length=1000)] = None,
) -> DatasetCreated:
    """Store the request body as a dataset of the caller; link it to jobs by its ``id``.

    The name shown for it comes from ``?filename=`` or the ``X-Filename`` header.
    """
    caller = await run_in_threadpool(_caller, request, sessions, rate_limit, settings)
    declared = _check_upload(request, settings.max_dataset_bytes)
    quota = DatasetQuota.of(settings)
    await run_in_threadpool(_precheck_quota, sessions, quota, caller.user_id, declared)
    directory = datasets_dir(settings)
    upload = await run_in_threadpool(DatasetUpload, directory, max_bytes=settings.max_dataset_bytes)
    with upload:
        pending = bytearray()
        async for chunk in request.stream():
            pending += chunk
            if len(pending) > settings.max_dataset_bytes:
                raise dataset_too_large(settings.max_dataset_bytes)
            if len(pending) >= UPLOAD_WRITE_BYTES:
                await run_in_threadpool(upload.write, bytes(pending))
                pending.clear()
        await run_in_threadpool(upload.write, bytes(pending))
        name = filename or request.headers.get("x-filename")
        dataset = await run_in_threadpool(_save, sessions, upload, caller.user_id, name, quota)
    return DatasetCreated(dataset=dataset)
