"""Revoked means revoked everywhere: the job tokens of a revoked agent or key die too.

A job token is handed out at claim time and is the only credential its reports need.
Revoking the agent that claimed a job (Training Agent page) or the API key it claimed
with (page or bound key) would otherwise leave that token working until the job ends.
So revocation also takes back the agent's running and paused jobs: each one's token
moves to ``revoked_token_hashes`` (its next report gets 403 ``JOB_TOKEN_REVOKED``, which
the agent reads as "job gone": it stops the job and drops its reports), and the job goes
back to ``pending`` while attempts remain, else fails with ``AGENT_REVOKED_ERROR``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from training_backend.db.models import TrainingJob
from training_backend.errors import ApiError
from training_backend.job_status import JobStatus
from training_backend.services.wakeups import announce_jobs

LEASED_STATUSES = (JobStatus.RUNNING.value, JobStatus.PAUSED.value)
AGENT_REVOKED_ERROR = "the agent running this job, or its API key, was revoked"
TOKEN_REVOKED_MESSAGE = (
    "This job's token was revoked together with the agent or API key that claimed it; "
    "stop running the job"
)


def token_revoked() -> ApiError:
    """403 ``JOB_TOKEN_REVOKED``: the agent must stop the job and drop its reports."""
    return ApiError(403, "JOB_TOKEN_REVOKED", TOKEN_REVOKED_MESSAGE)


def revoke_job_tokens(
    db: Session,
    *,
    user_id: str,
    now: datetime,
    agent_id: str | None = None,
    key_id: str | None = None,
) -> list[str]:
    """Take back the user's held jobs claimed by ``agent_id`` or with key ``key_id``.

    Returns the ids of the jobs taken back. Flushes; the caller commits (so the
    revocation and this happen in one transaction). Jobs put back to ``pending``
    are announced to other backend processes' long polls.
    """
    claimed_by: list[ColumnElement[bool]] = []
    if agent_id is not None:
        claimed_by.append(TrainingJob.agent_id == agent_id)
    if key_id is not None:
        claimed_by.append(TrainingJob.claimed_by_key_id == key_id)
    if not claimed_by:
        return []
    jobs = db.scalars(
        select(TrainingJob)
        .where(TrainingJob.user_id == user_id)
        .where(TrainingJob.status.in_(LEASED_STATUSES))
        .where(or_(*claimed_by))
    ).all()
    requeued = False
    for job in jobs:
        values = _taken_back(job, now)
        requeued |= values["status"] == JobStatus.PENDING.value
        db.execute(
            update(TrainingJob)
            .where(TrainingJob.id == job.id)
            .values(values)
            .execution_options(synchronize_session=False)
        )
    if requeued:
        announce_jobs(db, user_ids=[user_id])
    return [job.id for job in jobs]


def _taken_back(job: TrainingJob, now: datetime) -> dict[str, Any]:
    revoked = [*(job.revoked_token_hashes or []), *filter(None, [job.job_token_hash])]
    values: dict[str, Any] = {
        "job_token_hash": None,
        "revoked_token_hashes": revoked,
        "lease_expires_at": None,
        "control": None,
        "updated_at": now,
    }
    if job.control == "cancel":
        return values | {"status": JobStatus.CANCELLED.value, "completed_at": now}
    if job.attempt < job.max_attempts:
        back = {"status": JobStatus.PENDING.value, "agent_id": None, "claimed_at": None}
        return values | back | {"claimed_by_key_id": None, "error_message": AGENT_REVOKED_ERROR}
    failed = {"status": JobStatus.FAILED.value, "completed_at": now}
    return values | failed | {"error_message": AGENT_REVOKED_ERROR}
