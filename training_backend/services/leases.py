"""Leases: a claimed job stays an agent's only while the agent keeps in touch.

A claim starts a lease of ``lease_seconds``; heartbeats and every job-token report renew
it. When it runs out (the housekeeping task calls ``expire_leases``) the job goes back to
``pending`` while attempts remain, else it fails with "agent lost contact"; a job with a
cancel pending is cancelled instead. Either way its token is retired, so a late report
with it gets 409 ``LEASE_EXPIRED`` and the agent stops that job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from training_backend.db.models import TrainingJob
from training_backend.errors import ApiError
from training_backend.job_status import JobStatus
from training_backend.services.wakeups import Signal, announce

#: Statuses in which a job is held by an agent under a lease.
LEASED_STATUSES = (JobStatus.RUNNING.value, JobStatus.PAUSED.value)
LOST_CONTACT = "agent lost contact"
#: A report renews the lease only once this share of it has passed (saves a write per
#: report when reports come every second); a heartbeat always renews.
RENEW_AFTER_SHARE = 0.1
#: Leases expired per housekeeping step at most (the next step takes the rest).
EXPIRE_BATCH = 200


def lease_deadline(now: datetime, lease_seconds: int) -> datetime:
    """When a lease renewed at ``now`` runs out."""
    return now + timedelta(seconds=lease_seconds)


def renew_lease(db: Session, *, job: TrainingJob, now: datetime, lease_seconds: int) -> None:
    """Push the lease of ``job`` (held, token still valid) to ``now + lease_seconds``.

    Skipped while most of the current lease is left. Flushes; the caller commits.
    """
    if job.status not in LEASED_STATUSES:
        return
    deadline = lease_deadline(now, lease_seconds)
    slack = timedelta(seconds=lease_seconds * RENEW_AFTER_SHARE)
    if job.lease_expires_at is not None and job.lease_expires_at >= deadline - slack:
        return
    stmt = (
        update(TrainingJob)
        .where(TrainingJob.id == job.id, TrainingJob.status.in_(LEASED_STATUSES))
        .where(TrainingJob.job_token_hash == job.job_token_hash)
        .values(lease_expires_at=deadline)
        .execution_options(synchronize_session=False)
    )
    if db.execute(stmt).rowcount:  # type: ignore[attr-defined]
        job.lease_expires_at = deadline


def refuse_unleased(job: TrainingJob) -> None:
    """409 ``JOB_NOT_ACTIVE`` unless ``job`` is running or paused (what a heartbeat is for)."""
    if job.status not in LEASED_STATUSES:
        message = f"Job is {job.status}: heartbeats are only for running or paused jobs"
        raise ApiError(409, "JOB_NOT_ACTIVE", message, extra={"current_status": job.status})


@dataclass
class ExpiredLeases:
    """What one ``expire_leases`` call did, by job id."""

    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    #: One per requeued job: it is on offer again, so an agent that can take it wakes.
    signals: list[Signal] = field(default_factory=list)

    @property
    def total(self) -> int:
        """How many leases expired."""
        return len(self.requeued) + len(self.failed) + len(self.cancelled)


def _outcome(job: TrainingJob, now: datetime) -> tuple[str, dict[str, Any]]:
    retired = [*(job.retired_token_hashes or []), *filter(None, [job.job_token_hash])]
    values: dict[str, Any] = {
        "job_token_hash": None,
        "retired_token_hashes": retired,
        "lease_expires_at": None,
        "control": None,
        "updated_at": now,
    }
    if job.control == "cancel":
        return "cancelled", values | {"status": JobStatus.CANCELLED.value, "completed_at": now}
    if job.attempt < job.max_attempts:
        back = {
            "status": JobStatus.PENDING.value,
            "agent_id": None,
            "claimed_at": None,
            "available_at": now,
            "offered_to": None,
        }
        return "requeued", values | back | {"error_message": LOST_CONTACT}
    failed = {"status": JobStatus.FAILED.value, "completed_at": now}
    return "failed", values | failed | {"error_message": LOST_CONTACT}


def _expire_one(db: Session, job: TrainingJob, now: datetime) -> str | None:
    outcome, values = _outcome(job, now)
    # Compare-and-set on what was read: a heartbeat or report that renewed the lease
    # meanwhile wins, and the job stays with its agent.
    stmt = (
        update(TrainingJob)
        .where(TrainingJob.id == job.id, TrainingJob.status == job.status)
        .where(TrainingJob.lease_expires_at == job.lease_expires_at)
        .values(values)
        .execution_options(synchronize_session=False)
    )
    return outcome if db.execute(stmt).rowcount else None  # type: ignore[attr-defined]


def expire_leases(db: Session, *, now: datetime) -> ExpiredLeases:
    """Take back every job whose lease ran out before ``now``; commits."""
    query = (
        select(TrainingJob)
        .where(TrainingJob.status.in_(LEASED_STATUSES), TrainingJob.lease_expires_at < now)
        .order_by(TrainingJob.lease_expires_at)
        .limit(EXPIRE_BATCH)
    )
    result = ExpiredLeases()
    for job in db.scalars(query).all():
        outcome = _expire_one(db, job, now)
        if outcome is not None:
            getattr(result, outcome).append(job.id)
            if outcome == "requeued":
                result.signals.append(Signal.job(job.user_id, job.requirements))
    announce(db, result.signals)
    db.commit()
    return result
