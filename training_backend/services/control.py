"""Job control: the owner asks to cancel, pause or resume; the agent sees it in ``control``.

A pending job is cancelled at once (no agent has it). A held job gets ``control`` set;
the agent reads it from its next heartbeat or report, acts, and reports the status that
follows (``cancelled``, ``paused``, ``running``), which clears it (``services.status``).

| action | job status (control)          | effect                          |
|--------|-------------------------------|---------------------------------|
| cancel | pending                       | cancelled now                   |
| cancel | running, paused               | control = cancel                |
| pause  | running (none or resume)      | control = pause                 |
| pause  | paused (resume)               | control cleared (stay paused)   |
| resume | paused (none or pause)        | control = resume                |
| resume | running (pause)               | control cleared (keep running)  |
| any    | anything else                 | 409 with a sentence             |
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from training_backend.db.models import TrainingJob
from training_backend.errors import ApiError
from training_backend.job_status import JobStatus
from training_backend.services.jobs import get_owned_job
from training_backend.services.wakeups import Signal, announce

_MAX_ATTEMPTS = 3


class ControlAction(enum.StrEnum):
    """What the owner of a job can ask its agent to do."""

    CANCEL = "cancel"  # stop for good; the job ends ``cancelled``
    PAUSE = "pause"  # suspend; the job becomes ``paused``
    RESUME = "resume"  # continue a paused job; it becomes ``running`` again


def _refuse(job: TrainingJob, action: ControlAction) -> ApiError:
    status, control = job.status, job.control
    if JobStatus(status).is_terminal:
        message = f"Job is already {status}; there is nothing to {action.value}"
    elif control == ControlAction.CANCEL:
        message = f"Job is being cancelled; it cannot {action.value} any more"
    elif action == ControlAction.PAUSE:
        message = f"Only a running job can be paused; this one is {status}"
    elif action == ControlAction.RESUME:
        message = f"Only a paused job can be resumed; this one is {status}"
    else:
        message = f"Job is {status}; it cannot be cancelled"
    extra = {"current_status": status, "control": control}
    return ApiError(409, "INVALID_CONTROL", message, extra=extra)


def _changes(job: TrainingJob, action: ControlAction, now: datetime) -> dict[str, Any] | None:
    """The column values ``action`` sets on ``job`` as read, or ``None`` if it is refused."""
    status, control = JobStatus(job.status), job.control
    asked = {"control": action.value, "control_requested_at": now, "updated_at": now}
    cleared = {"control": None, "control_requested_at": now, "updated_at": now}
    if action == ControlAction.CANCEL:
        if status == JobStatus.PENDING:
            done = {"status": JobStatus.CANCELLED.value, "completed_at": now}
            return cleared | done
        return asked if status in (JobStatus.RUNNING, JobStatus.PAUSED) else None
    if control == ControlAction.CANCEL:
        return None
    active, resting = (
        (JobStatus.RUNNING, JobStatus.PAUSED)
        if action == ControlAction.PAUSE
        else (JobStatus.PAUSED, JobStatus.RUNNING)
    )
    if status == active:
        return asked
    if status == resting and control not in (None, action.value):
        return cleared  # withdraws the opposite request the agent has not acted on yet
    return None


def request_control(
    db: Session, *, job_id: str, user_id: str, action: ControlAction, now: datetime
) -> TrainingJob:
    """Apply ``action`` to the user's job (404 if not theirs, 409 if it makes no sense).

    A compare-and-set on the status and control that were read: if the agent reported
    something meanwhile, the decision is made again on the fresh row.
    """
    job = get_owned_job(db, job_id=job_id, user_id=user_id)
    for _ in range(_MAX_ATTEMPTS):
        values = _changes(job, action, now)
        if values is None:
            raise _refuse(job, action)
        if action == ControlAction.CANCEL and job.agent_id is not None:
            announce(db, [Signal.agent(job.user_id, job.agent_id)])
        stmt = (
            update(TrainingJob)
            .where(TrainingJob.id == job.id, TrainingJob.status == job.status)
            .where(_same_control(job.control))
            .values(values)
            .returning(TrainingJob)
            .execution_options(populate_existing=True)
        )
        updated = db.scalars(stmt).one_or_none()
        db.commit()
        if updated is not None:
            return updated
        db.refresh(job)
    raise ApiError(409, "CONFLICT", "The job changed while the request was applied; try again")


def _same_control(control: str | None) -> Any:
    column = TrainingJob.control
    return column.is_(None) if control is None else column == control
