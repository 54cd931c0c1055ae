"""Bodies of the agent protocol: poll and claim answers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, SerializerFunctionWrapHandler, model_serializer

from training_backend.schemas.jobs import JobDispatch

#: Protocol extensions this backend implements (DESIGN section 3); agents use only these.
FEATURES: tuple[str, ...] = ("log_offsets", "metrics_upsert", "job_details")


class PollAnswer(BaseModel):
    """Answer to a poll: the oldest pending job or ``null``, and when to poll again."""

    job: JobDispatch | None
    poll_interval_seconds: int
    features: list[str]
    message: str | None = None

    @model_serializer(mode="wrap")
    def _without_empty_message(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("message") is None:
            data.pop("message", None)
        return data


class ClaimAnswer(BaseModel):
    """Answer to a successful claim: the job and the token that authorises its reports."""

    success: bool = True
    job_token: str
    job: JobDispatch
