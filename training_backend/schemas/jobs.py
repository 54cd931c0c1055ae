"""Job bodies: submitting a job, and the views of a job each kind of caller gets."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from training_backend.db.models import Dataset, TrainingJob, TrainingMetric
from training_backend.job_status import JobStatus

#: Highest ``max_attempts`` a job may ask for (each attempt is a lease that can expire).
MAX_ATTEMPTS = 10


class JobCreate(BaseModel):
    """``POST /api/training/jobs`` and ``jobs submit --file``: what to run."""

    model_config = ConfigDict(extra="forbid")

    model_name: str | None = Field(default=None, max_length=1000)
    dataset_path: str | None = Field(default=None, max_length=4096)
    config: dict[str, Any]
    dataset_id: str | None = Field(default=None, max_length=36)
    """A dataset uploaded with ``POST /api/training/datasets`` (feature ``dataset_download``)."""
    max_attempts: int = Field(default=1, ge=1, le=MAX_ATTEMPTS)
    """Claims the job may get: an expired lease puts it back to pending while attempts remain."""
    requirements: Any = None
    """Which agent may take it: ``{"agent_id", "labels", "min_gpus", "min_gpu_memory_gb"}``
    (feature ``requirements``; checked by ``services.matching.check_requirements``)."""


class DatasetPublic(BaseModel):
    """A dataset held by the backend, as its owner and the job's agent see it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    filename: str
    sha256: str
    size_bytes: int


class DatasetCreated(BaseModel):
    """Answer to a dataset upload."""

    dataset: DatasetPublic


class JobDispatch(BaseModel):
    """A job as poll and claim hand it to an agent (the v1 protocol's shape).

    ``dataset`` (an extension) is set when the backend holds the job's dataset: the agent
    fetches it from ``GET /api/training/local/{id}/dataset`` and checks ``sha256``.
    """

    id: str
    model_name: str | None
    dataset_path: str | None
    config: dict[str, Any]
    total_epochs: float | None
    total_steps: int | None
    created_at: datetime
    dataset: DatasetPublic | None = None

    @classmethod
    def of(cls, job: TrainingJob, *, dataset: Dataset | None = None) -> Self:
        """This view of ``job`` (with ``dataset``, the row ``job.dataset_id`` names)."""
        fields = {name: getattr(job, name) for name in cls.model_fields if name != "dataset"}
        fields["dataset"] = None if dataset is None else DatasetPublic.model_validate(dataset)
        return cls.model_validate(fields)


class JobPublic(JobDispatch):
    """A job as its owner sees it after submitting it."""

    status: str
    agent_id: str | None
    requirements: dict[str, Any] | None = None
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


class JobCreated(BaseModel):
    """Answer to a job submission."""

    job: JobPublic


class JobSummary(BaseModel):
    """A job as the jobs list shows it (no config: that can be large)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    status: str
    model_name: str | None
    agent_id: str | None
    control: str | None
    current_step: int | None
    total_steps: int | None
    progress: float | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    requirements: dict[str, Any] | None = None
    waiting_for: str | None = None
    """For a pending job: the agent it waits for, in words (``services.waiting``)."""


class JobsPage(BaseModel):
    """``GET /api/training/jobs``: a page of the caller's jobs, newest first."""

    jobs: list[JobSummary]
    total: int
    limit: int
    offset: int


class JobStatusView(BaseModel):
    """``GET …/{id}/status``: the job's state and its latest reported metrics."""

    job_id: str
    status: str
    model_name: str | None
    dataset_path: str | None
    agent_id: str | None
    control: str | None
    attempt: int
    max_attempts: int
    lease_expires_at: datetime | None
    dataset_id: str | None
    current_step: int | None
    current_epoch: float | None
    total_steps: int | None
    total_epochs: float | None
    progress: float
    loss: float | None
    eval_loss: float | None
    learning_rate: float | None
    grad_norm: float | None
    train_perplexity: float | None
    eval_perplexity: float | None
    samples_per_second: float | None
    tokens_per_second: float | None
    gpu_memory_allocated_gb: float | None
    gpu_memory_reserved_gb: float | None
    gpu_utilization_percent: float | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    elapsed_seconds: float
    error: str | None
    exit_code: int | None
    outputs: Any | None
    requirements: dict[str, Any] | None = None
    waiting_for: str | None = None
    """For a pending job: the agent it waits for, in words
    (``"an agent with label a100 (none online)"``)."""

    @classmethod
    def of(
        cls, job: TrainingJob, *, now: datetime, waiting_for: str | None = None
    ) -> JobStatusView:
        """The status view of ``job`` at time ``now``."""
        fields = {name: getattr(job, name, None) for name in cls.model_fields}
        fields |= {
            "job_id": job.id,
            "waiting_for": waiting_for,
            "progress": job.progress or 0.0,
            "eval_perplexity": job.perplexity,
            "elapsed_seconds": _elapsed_seconds(job, now=now),
            "error": job.error_message if job.status == JobStatus.FAILED else None,
        }
        return cls.model_validate(fields)


def _elapsed_seconds(job: TrainingJob, *, now: datetime) -> float:
    if job.started_at is None:
        return 0.0
    end = job.completed_at or now
    return round(max(0.0, (end - job.started_at).total_seconds()), 3)


class MetricRow(BaseModel):
    """One stored metric point."""

    model_config = ConfigDict(from_attributes=True)

    step: int
    epoch: float
    train_loss: float | None
    eval_loss: float | None
    learning_rate: float | None
    grad_norm: float | None
    perplexity: float | None
    train_perplexity: float | None
    samples_per_second: float | None
    tokens_per_second: float | None
    gpu_memory_allocated_gb: float | None
    gpu_memory_reserved_gb: float | None
    gpu_utilization_percent: float | None
    extra: dict[str, float] | None = None
    """The point's other series, by name (feature ``metrics_extra``); absent when none."""
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: TrainingMetric, extra: dict[str, float] | None = None) -> MetricRow:
        """The view of a stored point, with its ``extra`` series."""
        return cls.model_validate(row).model_copy(update={"extra": extra or None})


class MetricsPage(BaseModel):
    """``GET …/{id}/metrics``: every point of the job, by step."""

    job_id: str
    metrics: list[MetricRow]


class LogsPage(BaseModel):
    """``GET …/{id}/logs``: a slice of the job's log stream."""

    logs: list[str]
    total_lines: int
    offset: int
    limit: int
