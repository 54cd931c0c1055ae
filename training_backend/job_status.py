"""A job's status and the transitions the backend allows between statuses."""

from __future__ import annotations

import enum

from training_backend.errors import ApiError


class JobStatus(enum.StrEnum):
    """A job's status, as stored and as sent on the wire."""

    PENDING = "pending"  # submitted, waiting for an agent to claim it
    RUNNING = "running"  # claimed by an agent, which runs it
    PAUSED = "paused"  # stopped on request; can resume
    COMPLETED = "completed"  # finished successfully (terminal)
    FAILED = "failed"  # finished with an error (terminal)
    CANCELLED = "cancelled"  # stopped for good on request (terminal)

    @property
    def is_terminal(self) -> bool:
        """True for statuses no job ever leaves."""
        return self in _TERMINAL


_TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})

#: The statuses an agent may report (``pending`` is only ever set by the backend).
REPORTABLE_STATUSES: tuple[JobStatus, ...] = (
    JobStatus.RUNNING,
    JobStatus.COMPLETED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
    JobStatus.PAUSED,
)

ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED}),
    JobStatus.RUNNING: frozenset(
        {JobStatus.PAUSED, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}
    ),
    JobStatus.PAUSED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


def check_transition(current: JobStatus, new: JobStatus) -> None:
    """Raise 409 ``INVALID_TRANSITION`` unless a job may go from ``current`` to ``new``.

    Reporting the status a job already has is allowed: a report retried after its
    answer was lost must succeed, not fail.
    """
    if new == current or new in ALLOWED_TRANSITIONS[current]:
        return
    raise ApiError(
        409,
        "INVALID_TRANSITION",
        f"Cannot change job status from {current.value} to {new.value}",
        extra={"current_status": current.value},
    )
