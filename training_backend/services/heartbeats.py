"""Heartbeats: an agent says a job is alive; the answer carries the owner's request."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from training_backend.db.models import TrainingJob
from training_backend.schemas.reports import Heartbeat
from training_backend.services.agents import ensure_agent_allowed
from training_backend.services.job_tokens import lease_expired
from training_backend.services.leases import LEASED_STATUSES, lease_deadline, refuse_unleased
from training_backend.services.progress import progress_at_step


def _position(report: Heartbeat) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if report.progress is not None:
        values["progress"] = report.progress
    if report.step is not None:
        values["current_step"] = report.step
        values.setdefault("progress", progress_at_step(report.step))
    return values


def record_heartbeat(
    db: Session, *, job: TrainingJob, report: Heartbeat, now: datetime, lease_seconds: int
) -> TrainingJob:
    """Renew the lease of a running or paused ``job`` and note where it is; commits.

    409 ``JOB_NOT_ACTIVE`` for a job in another status; 403 ``AGENT_REVOKED`` when the
    job's agent was revoked. A step lower than the stored one leaves the summary alone.
    """
    refuse_unleased(job)
    if job.agent_id is not None:
        ensure_agent_allowed(db, user_id=job.user_id, agent_id=job.agent_id)
    values: dict[str, Any] = {
        "lease_expires_at": lease_deadline(now, lease_seconds),
        "last_heartbeat_at": now,
    }
    stmt = (
        update(TrainingJob)
        .where(TrainingJob.id == job.id, TrainingJob.status.in_(LEASED_STATUSES))
        .where(TrainingJob.job_token_hash == job.job_token_hash)
        .values(values)
        .returning(TrainingJob)
        .execution_options(populate_existing=True)
    )
    updated = db.scalars(stmt).one_or_none()
    if updated is None:  # the job ended or its lease expired since it was read
        token_hash = job.job_token_hash
        db.commit()
        db.refresh(job)
        if job.job_token_hash != token_hash:
            raise lease_expired()
        refuse_unleased(job)
        return job
    if position := _position(report):
        move = update(TrainingJob).where(TrainingJob.id == job.id)
        if report.step is not None:
            step = TrainingJob.current_step
            move = move.where(or_(step.is_(None), step <= report.step))
        db.execute(move.values(position).execution_options(synchronize_session=False))
    db.commit()
    return updated
