"""What a job is to the agent: its status, its outcome, and where its reports go."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol


class JobStatus(enum.StrEnum):
    """A job's status on the wire (protocol v1 values)."""

    PENDING = "pending"  # submitted, not yet claimed
    RUNNING = "running"  # claimed and started by an agent
    PAUSED = "paused"  # stopped by the user, can resume
    COMPLETED = "completed"  # trainer exited 0
    FAILED = "failed"  # trainer failed, or the agent could not run it
    CANCELLED = "cancelled"  # stopped on request

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(frozen=True)
class JobDataset:
    """The job's dataset as the backend holds it (``dataset_download``): what to fetch
    and the checksum the file must have."""

    id: str
    filename: str
    sha256: str
    size_bytes: int | None = None


@dataclass(frozen=True)
class ClaimedJob:
    """A job this agent has claimed: what the claim answered."""

    id: str
    job_token: str
    config: dict[str, Any]
    model_name: str | None = None
    dataset_path: str | None = None
    lease_seconds: float | None = None
    dataset: JobDataset | None = None


class OutputKind(enum.StrEnum):
    """What a declared output is (the ``kind`` of an ``output`` event)."""

    ADAPTER = "adapter"  # a fine-tuned adapter (LoRA): small, needs its base model
    MODEL = "model"  # a whole model
    CHECKPOINT = "checkpoint"  # a snapshot to resume from (``checkpoint`` events)
    FILE = "file"  # anything else the job produced (an export, a report)


@dataclass(frozen=True)
class JobOutput:
    """A file or directory the trainer declared, as an absolute path in its work dir's
    terms (not yet checked); ``name`` is what the platform shows (None: the path's own)."""

    path: str
    kind: OutputKind = OutputKind.FILE
    name: str | None = None


@dataclass(frozen=True)
class JobOutcome:
    """How a job ended. ``reason`` is the error sentence for failed and cancelled jobs.

    ``outputs`` are the paths the trainer reported as checkpoints or outputs, in order;
    ``declared`` the same outputs with their kind and name.
    """

    status: JobStatus
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None
    outputs: tuple[str, ...] = ()
    declared: tuple[JobOutput, ...] = ()


class JobSink(Protocol):
    """Where a running job's reports go (the outbox). Calls must be fast and never raise."""

    def log(self, line: str) -> None:
        """One log line, without its newline."""

    def metric(self, point: dict[str, Any]) -> None:
        """One metric point with ``step`` >= 1 and numeric ``epoch`` plus backend key names."""

    def progress(self, *, total_steps: int | None, total_epochs: float | None) -> None:
        """The job's totals, once known."""
