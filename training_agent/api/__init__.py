"""The backend's HTTP API: one call per endpoint, typed answers, no retries."""

from training_agent.api.client import BackendClient
from training_agent.api.models import (
    CONTROLS,
    ClaimResponse,
    DatasetRef,
    HeartbeatResponse,
    JobState,
    LogsResponse,
    PolledJob,
    PollResponse,
    ReportResponse,
)

__all__ = [
    "CONTROLS",
    "BackendClient",
    "ClaimResponse",
    "DatasetRef",
    "HeartbeatResponse",
    "JobState",
    "LogsResponse",
    "PollResponse",
    "PolledJob",
    "ReportResponse",
]
