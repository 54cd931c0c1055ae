"""The backend's HTTP API: one call per endpoint, typed answers, no retries."""

from training_agent.api.client import BackendClient
from training_agent.api.models import (
    ClaimResponse,
    JobState,
    LogsResponse,
    PolledJob,
    PollResponse,
)

__all__ = [
    "BackendClient",
    "ClaimResponse",
    "JobState",
    "LogsResponse",
    "PollResponse",
    "PolledJob",
]
