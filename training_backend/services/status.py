"""Status reports: checked against the transition table, applied with a compare-and-set."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, func, update
from sqlalchemy.orm import Session

from training_backend.db.models import TrainingJob
from training_backend.errors import ApiError
from training_backend.job_status import JobStatus, check_transition
from training_backend.schemas.reports import StatusUpdate
from training_backend.services.progress import progress_of_total

_MAX_ATTEMPTS = 3
#: The control request a reported status fulfils (a terminal status clears any).
_ANSWERED_CONTROL = {JobStatus.PAUSED: "pause", JobStatus.RUNNING: "resume"}


def _new_values(report: StatusUpdate, new: JobStatus, now: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {"status": new.value, "updated_at": now}
    if new == JobStatus.RUNNING:
        values["started_at"] = func.coalesce(TrainingJob.started_at, now)
    if new.is_terminal:
        values["completed_at"] = func.coalesce(TrainingJob.completed_at, now)
        values["control"] = None
    elif (answered := _ANSWERED_CONTROL.get(new)) is not None:
        # The agent acted on the pending request: clear it (any other one stays).
        control = TrainingJob.control
        values["control"] = case((control == answered, None), else_=control)
    if report.error is not None:
        values["error_message"] = report.error  # never into config (the reference's bug)
    if report.total_steps is not None:
        values["total_steps"] = report.total_steps
        values["progress"] = progress_of_total(report.total_steps)
    for name in ("total_epochs", "exit_code", "outputs"):
        if (value := getattr(report, name)) is not None:
            values[name] = value
    return values


def update_status(
    db: Session, *, job: TrainingJob, report: StatusUpdate, now: datetime
) -> TrainingJob:
    """Apply an agent's status report to ``job`` (409 ``INVALID_TRANSITION`` if illegal).

    The UPDATE only applies while the status is still the one the transition was checked
    against; if another request changed it meanwhile, the check runs again on the fresh
    row instead of overwriting it.
    """
    new = JobStatus(report.status)
    for _ in range(_MAX_ATTEMPTS):
        current = JobStatus(job.status)
        check_transition(current, new)
        stmt = (
            update(TrainingJob)
            .where(TrainingJob.id == job.id, TrainingJob.status == current.value)
            .values(_new_values(report, new, now))
            .returning(TrainingJob)
            .execution_options(populate_existing=True)
        )
        updated = db.scalars(stmt).one_or_none()
        db.commit()
        if updated is not None:
            return updated
        db.refresh(job)
    raise ApiError(409, "CONFLICT", "The job changed while its status was being updated")
