"""Bodies of the agent protocol: poll and claim answers."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from pydantic import BaseModel, SerializerFunctionWrapHandler, model_serializer

from training_backend.schemas.jobs import JobDispatch

#: Protocol extensions this backend implements (DESIGN section 3); agents use only these.
FEATURES: tuple[str, ...] = (
    "long_poll",
    "heartbeat",
    "leases",
    "log_offsets",
    "metrics_upsert",
    "job_details",
    "dataset_download",
    "agent_info",
    "revocation",
    "metrics_extra",
    "artifacts",
    "agent_update",
    "requirements",
)


class UpdateArchive(BaseModel):
    """One build an agent may update itself to (services/agent_updates.py)."""

    arch: str
    filename: str
    url: str
    sha256: str
    signature: str | None


class AgentUpdate(BaseModel):
    """The version this backend wants its agents on, and where to get it."""

    version: str
    downgrade: bool
    archives: list[UpdateArchive]


class PollAnswer(BaseModel):
    """Answer to a poll: the oldest pending job or ``null``, and when to poll again."""

    job: JobDispatch | None
    poll_interval_seconds: int
    features: list[str]
    message: str | None = None
    agent_update: AgentUpdate | None = None

    @model_serializer(mode="wrap")
    def _without_empty_message(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for optional in ("message", "agent_update"):
            if data.get(optional) is None:
                data.pop(optional, None)
        return data


@functools.cache
def no_job_body(poll_interval_seconds: int) -> bytes:
    """The JSON of a poll answer with neither a job nor an update: almost every poll's,
    so serialised once per interval."""
    answer = PollAnswer(
        job=None,
        poll_interval_seconds=poll_interval_seconds,
        features=list(FEATURES),
        message="No pending jobs available",
    )
    return answer.model_dump_json().encode()


def poll_body(
    job: JobDispatch | None, poll_interval_seconds: int, update: AgentUpdate | None
) -> bytes:
    """The JSON of a poll answer (``no_job_body`` when there is neither job nor update)."""
    if job is None and update is None:
        return no_job_body(poll_interval_seconds)
    answer = PollAnswer(
        job=job,
        poll_interval_seconds=poll_interval_seconds,
        features=list(FEATURES),
        message="No pending jobs available" if job is None else None,
        agent_update=update,
    )
    return answer.model_dump_json().encode()


class ClaimAnswer(BaseModel):
    """Answer to a successful claim: the job and the token that authorises its reports."""

    success: bool = True
    job_token: str
    job: JobDispatch
    lease_seconds: int


class HeartbeatAnswer(BaseModel):
    """Answer to a heartbeat: what the owner asks of the job, and the renewed lease."""

    control: str | None
    lease_expires_at: datetime | None


class ControlAnswer(BaseModel):
    """Answer to ``POST …/control``: the job's status and the control its agent will see."""

    success: bool = True
    job_id: str
    action: str
    status: str
    control: str | None
