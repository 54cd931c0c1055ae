"""Bodies of the calls an agent reports a job's progress with (job-token auth)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt
from pydantic_core import ErrorDetails

from training_backend.body import first_field, validate
from training_backend.errors import ApiError, describe_validation_error
from training_backend.job_status import REPORTABLE_STATUSES
from training_backend.schemas.metric_extra import INVALID as EXTRA_INVALID
from training_backend.schemas.metric_extra import ExtraSeries

INT32_MAX = 2_147_483_647
#: A non-negative count that fits every database's INTEGER.
Count = Annotated[StrictInt, Field(ge=0, le=INT32_MAX)]
Number = StrictFloat  # accepts JSON integers too, never strings or booleans


class StatusUpdate(BaseModel):
    """``PATCH …/status``: the new status, plus details (feature ``job_details``)."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["running", "completed", "failed", "cancelled", "paused"]
    error: str | None = Field(default=None, max_length=65_536)
    total_steps: Count | None = None
    total_epochs: Annotated[Number, Field(ge=0)] | None = None
    exit_code: Annotated[StrictInt, Field(ge=-INT32_MAX, le=INT32_MAX)] | None = None
    outputs: dict[str, Any] | list[Any] | None = None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> StatusUpdate:
        """Validate a request body; a bad ``status`` gets the protocol's own sentence."""
        return validate(cls, data, on_error=_status_error)


def _status_error(errors: list[ErrorDetails]) -> ApiError:
    if first_field(errors) != "status":
        return ApiError(400, "INVALID_REQUEST", describe_validation_error(errors))
    allowed = ", ".join(status.value for status in REPORTABLE_STATUSES)
    return ApiError(400, "INVALID_STATUS_VALUE", f"Invalid status. Must be one of: {allowed}")


class JobTokenAnswer(BaseModel):
    """What every answer to a job-token call carries: the owner's pending request, if any."""

    success: bool = True
    control: str | None = None
    """``cancel``, ``pause``, ``resume`` or ``null`` (feature ``heartbeat``)."""


class StatusUpdated(JobTokenAnswer):
    """Answer to a status report."""

    status: str
    updated_at: datetime


class MetricPoint(BaseModel):
    """One metric point: ``step`` ≥ 1 and ``epoch`` plus any known metric; others ignored.

    NaN and Infinity arrive as null (see ``body.read_json_object``), so they erase nothing.
    """

    model_config = ConfigDict(extra="ignore")

    step: Annotated[StrictInt, Field(ge=1, le=INT32_MAX)]
    epoch: Number
    train_loss: Number | None = None
    eval_loss: Number | None = None
    learning_rate: Number | None = None
    grad_norm: Number | None = None
    perplexity: Number | None = None
    train_perplexity: Number | None = None
    samples_per_second: Number | None = None
    tokens_per_second: Number | None = None
    gpu_memory_allocated_gb: Number | None = None
    gpu_memory_reserved_gb: Number | None = None
    gpu_utilization_percent: Number | None = None
    extra: ExtraSeries | None = None

    @classmethod
    def parse(cls, data: Any, *, index: int | None = None) -> MetricPoint:
        """Validate one point; any problem is 400 ``INVALID_METRIC``."""
        return validate(cls, data, on_error=lambda errors: _metric_error(errors, index))


def _metric_error(errors: list[ErrorDetails], index: int | None) -> ApiError:
    field = first_field(errors)
    if field in (None, "step", "epoch"):
        message = "Invalid metric: step and epoch are required"
    elif field == "extra":
        message = EXTRA_INVALID
    else:
        message = f"Invalid metric: {field} must be a number"
    extra = {} if index is None else {"index": index}
    return ApiError(400, "INVALID_METRIC", message, extra=extra)


class MetricsBatch(BaseModel):
    """``POST /api/training/local/metrics``: several points of one job."""

    job_id: str
    points: list[MetricPoint]

    @classmethod
    def parse(cls, data: dict[str, Any], *, max_points: int) -> MetricsBatch:
        """Validate a batch body: a ``job_id`` and a non-empty ``metrics`` array."""
        job_id, metrics = data.get("job_id"), data.get("metrics")
        if not isinstance(job_id, str) or not job_id:
            raise ApiError(400, "INVALID_REQUEST", "Invalid request: job_id is required")
        if not isinstance(metrics, list) or not metrics:
            message = "Invalid request: metrics must be a non-empty array"
            raise ApiError(400, "INVALID_REQUEST", message)
        if len(metrics) > max_points:
            message = f"Too many metric points in one request (at most {max_points})"
            raise ApiError(413, "PAYLOAD_TOO_LARGE", message)
        points = [MetricPoint.parse(point, index=i) for i, point in enumerate(metrics)]
        return cls(job_id=job_id, points=points)


class MetricsRecorded(JobTokenAnswer):
    """Answer to a metrics report."""

    recorded: int


class LogAppend(BaseModel):
    """``POST …/logs``: lines, and where the first one sits (feature ``log_offsets``)."""

    lines: list[str]
    offset: int | None = None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> LogAppend:
        """Validate a logs body with the protocol's own error sentences."""
        lines, offset = data.get("logs"), data.get("offset")
        if not isinstance(lines, list):
            raise ApiError(400, "INVALID_REQUEST", "Invalid request: logs must be an array")
        if not all(isinstance(line, str) for line in lines):
            message = "Invalid request: all log entries must be strings"
            raise ApiError(400, "INVALID_REQUEST", message)
        valid_offset = type(offset) is int and 0 <= offset <= INT32_MAX
        if offset is not None and not valid_offset:
            message = "Invalid request: offset must be a non-negative integer"
            raise ApiError(400, "INVALID_REQUEST", message)
        return cls(lines=lines, offset=offset)


class LogsAppended(JobTokenAnswer):
    """Answer to a logs report: how many lines were new, and the stream's length."""

    logs_appended: int
    total_logs: int


class NothingToAppend(JobTokenAnswer):
    """Answer to a logs report without lines."""

    message: str = "No logs to append"


class Heartbeat(BaseModel):
    """``POST …/heartbeat``: optionally, where the job is (both fields may be left out)."""

    model_config = ConfigDict(extra="ignore")

    step: Count | None = None
    progress: Annotated[Number, Field(ge=0, le=100)] | None = None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Heartbeat:
        """Validate a heartbeat body (400 ``INVALID_REQUEST`` naming the field)."""
        return validate(cls, data)


class ControlRequest(BaseModel):
    """``POST …/control``: what the owner asks the job's agent to do."""

    model_config = ConfigDict(extra="ignore")

    action: Literal["cancel", "pause", "resume"]

    @classmethod
    def parse(cls, data: dict[str, Any]) -> ControlRequest:
        """Validate a control body with one sentence for a missing or unknown action."""
        return validate(cls, data, on_error=_action_error)


def _action_error(errors: list[ErrorDetails]) -> ApiError:
    message = "Invalid or missing action. Expected cancel, pause, or resume."
    return ApiError(400, "INVALID_ACTION", message)
