"""Claiming a job: one conditional UPDATE, so exactly one of many racing agents wins.

A claim whose answer was lost (the backend committed it, the connection broke before
the agent read the answer) must not strand the job: until the agent first uses the
claim's token (``claim_confirmed_at``), the same agent may claim the job again and gets
a fresh token, the old one retired (a late report with it gets 409 ``LEASE_EXPIRED``).
Its polls offer it such a job again once ``REOFFER_AFTER_S`` passed, for an agent that
crashed before it could retry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from training_backend.db.models import TrainingJob
from training_backend.errors import ApiError
from training_backend.job_status import JobStatus
from training_backend.security import generate_job_token, hash_secret
from training_backend.services.agents import ensure_agent_allowed
from training_backend.services.leases import lease_deadline
from training_backend.services.matching import describe

#: An unconfirmed claim older than this is offered to its agent's polls again. An agent
#: reports ``running`` within a second of its claim; this leaves room for a slow one.
REOFFER_AFTER_S = 10.0


def claim_job(
    db: Session,
    *,
    job_id: str,
    user_id: str,
    agent_id: str,
    now: datetime,
    lease_seconds: int,
    key_id: str | None = None,
    fits: Callable[[Mapping[str, Any] | None], bool] | None = None,
) -> tuple[TrainingJob, str]:
    """Give job ``job_id`` to ``agent_id`` for a lease; returns the job and its new token.

    A revoked agent gets 403 ``AGENT_REVOKED`` and nothing changes. ``key_id``, the API
    key that claims, is stored: revoking that key revokes the job's token too. ``fits``
    says whether the agent meets a job's requirements (``AgentProfile.could_ever``); one
    that does not gets 409 ``REQUIREMENTS_NOT_MET`` (a job's requirements never change,
    so reading them first leaves no race).

    The guard lives in the ``WHERE`` of a single ``UPDATE … RETURNING``: the database
    applies it atomically, on SQLite and PostgreSQL alike, so there is no window between
    a read and a write for a second claimer to slip through. Only when nothing matched
    is the row read again, to say why (404, 403 or 409).
    """
    ensure_agent_allowed(db, user_id=user_id, agent_id=agent_id)
    if fits is not None:
        _require_fit(db, job_id=job_id, user_id=user_id, fits=fits)
    token = generate_job_token()
    stmt = (
        update(TrainingJob)
        .where(TrainingJob.id == job_id)
        .where(TrainingJob.user_id == user_id)
        .where(TrainingJob.status == JobStatus.PENDING.value)
        .where(TrainingJob.agent_id.is_(None))
        .values(
            agent_id=agent_id,
            claimed_by_key_id=key_id,
            status=JobStatus.RUNNING.value,
            job_token_hash=hash_secret(token),
            claimed_at=now,
            started_at=now,
            updated_at=now,
            attempt=TrainingJob.attempt + 1,
            lease_expires_at=lease_deadline(now, lease_seconds),
            last_heartbeat_at=None,
            claim_confirmed_at=None,
            control=None,
            error_message=None,
            offered_to=None,
        )
        .returning(TrainingJob)
    )
    job = db.scalars(stmt).one_or_none()
    db.commit()
    if job is None:
        again = _claim_again(
            db, job_id=job_id, agent_id=agent_id, now=now, lease_seconds=lease_seconds
        )
        if again is not None:
            return again
        raise _why_not_claimed(db, job_id=job_id, user_id=user_id)
    return job, token


def _claim_again(
    db: Session, *, job_id: str, agent_id: str, now: datetime, lease_seconds: int
) -> tuple[TrainingJob, str] | None:
    """The job with a fresh token, if ``agent_id`` holds an unconfirmed claim on it."""
    job = db.get(TrainingJob, job_id, populate_existing=True)
    if job is None or job.agent_id != agent_id or job.claim_confirmed_at is not None:
        return None
    if job.status != JobStatus.RUNNING.value:
        return None
    token = generate_job_token()
    retired = [*(job.retired_token_hashes or []), *filter(None, [job.job_token_hash])]
    stmt = (
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.status == JobStatus.RUNNING.value)
        .where(TrainingJob.agent_id == agent_id, TrainingJob.claim_confirmed_at.is_(None))
        .where(TrainingJob.job_token_hash == job.job_token_hash)
        .values(
            job_token_hash=hash_secret(token),
            retired_token_hashes=retired,
            claimed_at=now,
            updated_at=now,
            lease_expires_at=lease_deadline(now, lease_seconds),
        )
        .returning(TrainingJob)
    )
    again = db.scalars(stmt).one_or_none()
    db.commit()
    return None if again is None else (again, token)


def unconfirmed_claim(db: Session, *, user_id: str, agent_id: str) -> TrainingJob | None:
    """The oldest job ``agent_id`` claimed and never confirmed: what its poll offers
    again, once ``reoffer_due``, when no job is pending."""
    query = (
        select(TrainingJob)
        .where(TrainingJob.user_id == user_id, TrainingJob.agent_id == agent_id)
        .where(TrainingJob.status == JobStatus.RUNNING.value)
        .where(TrainingJob.claim_confirmed_at.is_(None))
        .order_by(TrainingJob.claimed_at)
        .limit(1)
    )
    return db.scalar(query)


def reoffer_due(job: TrainingJob, *, now: datetime) -> bool:
    """True once an unconfirmed claim is ``REOFFER_AFTER_S`` old: its answer was most
    likely lost, and the agent's poll gets the job again."""
    return job.claimed_at is not None and job.claimed_at <= now - timedelta(seconds=REOFFER_AFTER_S)


def _require_fit(
    db: Session,
    *,
    job_id: str,
    user_id: str,
    fits: Callable[[Mapping[str, Any] | None], bool],
) -> None:
    requirements = db.scalar(
        select(TrainingJob.requirements)
        .where(TrainingJob.id == job_id)
        .where(TrainingJob.user_id == user_id)
    )
    if requirements and not fits(requirements):
        message = (
            f"This job asks for {describe(requirements)}, and this agent does not match; "
            "it is offered only to agents that do"
        )
        raise ApiError(409, "REQUIREMENTS_NOT_MET", message)


def _why_not_claimed(db: Session, *, job_id: str, user_id: str) -> ApiError:
    job = db.get(TrainingJob, job_id, populate_existing=True)
    if job is None:
        return ApiError(404, "JOB_NOT_FOUND", "Job not found")
    if job.user_id != user_id:
        return ApiError(403, "ACCESS_DENIED", "Job belongs to another user")
    if job.agent_id is not None:
        return ApiError(409, "ALREADY_CLAIMED", "Job already claimed by another agent")
    return ApiError(409, "INVALID_STATUS", f"Job is not pending (status: {job.status})")
