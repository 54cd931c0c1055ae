"""Jobs: submitting them, finding the next one to run, and reading one back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from training_backend.db.models import Dataset, JobLog, TrainingAgent, TrainingJob, TrainingMetric
from training_backend.errors import ApiError
from training_backend.job_status import JobStatus
from training_backend.services.matching import check_requirements
from training_backend.services.wakeups import Signal, announce


def create_job(
    db: Session,
    *,
    user_id: str,
    config: dict[str, Any],
    model_name: str | None = None,
    dataset_path: str | None = None,
    dataset_id: str | None = None,
    max_attempts: int = 1,
    requirements: Any = None,
    now: datetime,
) -> TrainingJob:
    """A new pending job of ``user_id``, waiting for one of the user's agents.

    ``dataset_id`` must name a dataset of the same user (404 ``DATASET_NOT_FOUND``);
    ``requirements`` are checked (400 ``INVALID_REQUIREMENTS`` with a sentence), and an
    ``agent_id`` in them must name an agent of the user.
    Other backend processes' long polls hear of it at commit (``announce``); this
    process's caller delivers ``job_signal(job)`` to its own (``Wakeups.deliver``).
    """
    if dataset_id is not None:
        dataset = db.get(Dataset, dataset_id)
        if dataset is None or dataset.user_id != user_id:
            raise ApiError(404, "DATASET_NOT_FOUND", f"No dataset with id '{dataset_id}'")
    wanted = check_requirements(requirements)
    if wanted is not None and "agent_id" in wanted:
        require_own_agent(db, user_id=user_id, agent_id=wanted["agent_id"])
    job = TrainingJob(
        user_id=user_id,
        status=JobStatus.PENDING.value,
        config=config,
        model_name=model_name,
        dataset_path=dataset_path,
        dataset_id=dataset_id,
        max_attempts=max_attempts,
        requirements=wanted,
        created_at=now,
        updated_at=now,
        available_at=now,
    )
    db.add(job)
    announce(db, [job_signal(job)])
    db.commit()
    return job


def require_own_agent(db: Session, *, user_id: str, agent_id: str) -> None:
    """400 unless ``agent_id`` names an agent of ``user_id`` (one that polled here).

    The same sentence whether the agent is someone else's or nobody's, so requirements
    are never a way to learn about other users' agents.
    """
    known = db.scalar(
        select(TrainingAgent.id)
        .where(TrainingAgent.user_id == user_id)
        .where(TrainingAgent.agent_id == agent_id)
    )
    if known is None:
        message = (
            "Invalid requirements: agent_id names no agent of yours; use the id the "
            "Training Agent page shows for one of your agents (it must have polled once)"
        )
        raise ApiError(400, "INVALID_REQUIREMENTS", message)


def job_signal(job: TrainingJob) -> Signal:
    """The signal that ``job`` is available: it wakes one agent that can take it."""
    return Signal.job(job.user_id, job.requirements)


def dataset_of(db: Session, job: TrainingJob) -> Dataset | None:
    """The dataset row ``job`` links to, if any (for the dispatch view)."""
    return None if job.dataset_id is None else db.get(Dataset, job.dataset_id)


def get_owned_job(db: Session, *, job_id: str, user_id: str) -> TrainingJob:
    """Job ``job_id`` if ``user_id`` owns it; 404 otherwise (others' jobs stay invisible)."""
    job = db.get(TrainingJob, job_id)
    if job is None or job.user_id != user_id:
        raise ApiError(404, "JOB_NOT_FOUND", "Job not found")
    return job


def list_jobs(
    db: Session, *, user_id: str, limit: int, offset: int
) -> tuple[list[TrainingJob], int]:
    """A page of the user's jobs, newest first, and how many the user has in all."""
    mine = TrainingJob.user_id == user_id
    total = db.scalar(select(func.count()).select_from(TrainingJob).where(mine)) or 0
    jobs = db.scalars(
        select(TrainingJob)
        .where(mine)
        .order_by(TrainingJob.created_at.desc(), TrainingJob.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(jobs), int(total)


def get_job(db: Session, *, job_id: str) -> TrainingJob:
    """Job ``job_id`` whoever owns it (for the operator's CLI); 404 if there is none."""
    job = db.get(TrainingJob, job_id)
    if job is None:
        raise ApiError(404, "JOB_NOT_FOUND", f"No job with id '{job_id}'")
    return job


def count_metric_points(db: Session, *, job_id: str) -> int:
    """How many metric points (distinct steps) the job has."""
    query = select(func.count()).select_from(TrainingMetric).where(TrainingMetric.job_id == job_id)
    return db.scalar(query) or 0


def count_log_lines(db: Session, *, job_id: str) -> int:
    """How many log lines the job has (counted, not read from the summary)."""
    query = select(func.count()).select_from(JobLog).where(JobLog.job_id == job_id)
    return db.scalar(query) or 0
