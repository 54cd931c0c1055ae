"""The JSON bodies the backend answers with, as pydantic models.

Every model ignores unknown fields and takes ``null`` for an optional field as "absent":
a backend may add keys at any time (docs/protocol.md), and FineTune Lab sends
``null`` for columns it never filled.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Bounds for the server-chosen poll interval: below 1 s an agent fleet hammers the
# backend, above 5 min a page shows the agent offline (FineTune Lab's threshold is 60 s,
# so a sane backend stays far below the upper bound anyway).
MIN_POLL_INTERVAL_S = 1.0
MAX_POLL_INTERVAL_S = 300.0
DEFAULT_POLL_INTERVAL_S = 10.0


class _Body(BaseModel):
    # hide_input_in_errors: a validation error must never carry a job token into a
    # traceback or log.
    model_config = ConfigDict(
        extra="ignore", frozen=True, coerce_numbers_to_str=True, hide_input_in_errors=True
    )


class DatasetRef(_Body):
    """A dataset the backend holds for a job (``dataset_download`` feature).

    The agent downloads it from ``GET /api/training/local/{id}/dataset`` with the job
    token and checks the file against ``sha256`` and ``size_bytes``.
    """

    id: str
    filename: str = "dataset"
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    size_bytes: int | None = Field(default=None, ge=0)

    @field_validator("sha256")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


class PolledJob(_Body):
    """A pending job as poll and claim describe it; ``dataset`` is an extension."""

    id: str
    model_name: str | None = None
    dataset_path: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    total_epochs: float | None = None
    total_steps: int | None = None
    created_at: str | None = None
    dataset: DatasetRef | None = None

    @field_validator("dataset", mode="before")
    @classmethod
    def _usable_dataset(cls, value: object) -> object:
        # A dataset entry this agent cannot use (no checksum, say) is treated as absent:
        # the job then runs from its dataset_path, as on a v1 backend.
        if value is None:
            return None
        try:
            return DatasetRef.model_validate(value)
        except ValueError:
            return None

    @field_validator("config", mode="before")
    @classmethod
    def _config_object(cls, value: object) -> object:
        # Treat a missing config as empty, and accept a config that arrives JSON-encoded
        # twice (a text column holding JSON) rather than refusing the job.
        if value is None:
            return {}
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value


class UpdateArchive(_Body):
    """One build an ``agent_update`` offers (the backend's word only: verified later)."""

    arch: str
    filename: str
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    signature: str | None = None


class AgentUpdateOffer(_Body):
    """``agent_update``: the version the backend wants this agent on, and its builds."""

    version: str = Field(min_length=1, max_length=64)
    downgrade: bool = False
    archives: list[UpdateArchive] = []


class PollResponse(_Body):
    """The answer to a poll: at most one job, the pacing, and the backend's extensions.

    A backend that sends no ``features`` is a plain v1 (FineTune Lab) backend.
    """

    job: PolledJob | None = None
    poll_interval_seconds: float = DEFAULT_POLL_INTERVAL_S
    features: frozenset[str] = frozenset()
    agent_update: AgentUpdateOffer | None = None

    @field_validator("agent_update", mode="wrap")
    @classmethod
    def _ignore_a_malformed_offer(cls, value: object, handler: Any) -> object:
        # An offer the agent cannot read is no reason to lose the job beside it.
        try:
            return handler(value)
        except ValueError:
            return None

    @field_validator("poll_interval_seconds", mode="before")
    @classmethod
    def _interval_default(cls, value: object) -> object:
        return DEFAULT_POLL_INTERVAL_S if value is None else value

    @field_validator("poll_interval_seconds")
    @classmethod
    def _interval_clamped(cls, value: float) -> float:
        if math.isnan(value):
            return DEFAULT_POLL_INTERVAL_S
        return min(max(value, MIN_POLL_INTERVAL_S), MAX_POLL_INTERVAL_S)

    @field_validator("features", mode="before")
    @classmethod
    def _feature_names(cls, value: object) -> object:
        # Unknown or malformed entries are ignored, like unknown fields.
        if value is None:
            return frozenset()
        if isinstance(value, list | tuple | set | frozenset):
            return frozenset(item for item in value if isinstance(item, str))
        return value


class ClaimResponse(_Body):
    """A won claim: the per-job token, the job, and (``leases`` feature) the lease length."""

    job_token: str = Field(min_length=1, pattern=r"^[\x21-\x7e]+$")
    job: PolledJob | None = None
    lease_seconds: float | None = None


CONTROLS = frozenset({"cancel", "pause", "resume"})
"""What a backend may ask of a running job (the ``heartbeat`` extension's ``control``)."""


class _Controlled(_Body):
    """An answer to a job-token call: our backend adds the job's pending ``control``.

    ``control`` is ``cancel``, ``pause``, ``resume`` or None; an unknown word is None
    (a newer backend's command this agent cannot carry out).
    """

    control: str | None = None

    @field_validator("control", mode="before")
    @classmethod
    def _known_control(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in CONTROLS:
            return value.strip().lower()
        return None


class ReportResponse(_Controlled):
    """The answer to a status or metrics report; only ``control`` matters to the agent."""


class LogsResponse(_Controlled):
    """What the backend says after storing log lines (both counts are optional)."""

    logs_appended: int | None = None
    total_logs: int | None = None


class HeartbeatResponse(_Controlled):
    """The answer to a heartbeat (``heartbeat`` extension): a command and the lease's end."""

    lease_expires_at: str | None = None


class JobState(_Controlled):
    """A job's state as ``GET /api/training/local/{id}/status`` reports it.

    ``status`` stays a plain string: FineTune Lab also uses values such as ``queued``
    that the agent never sends. ``control`` is our backend's pending command, if any.
    """

    status: str
    error: str | None = None


class ArtifactDeclared(_Controlled):
    """The answer to declaring an upload (``artifacts``): its id, how many of its bytes
    the server already holds (0 for a new one; all of them for a complete one), and the
    largest chunk it takes."""

    artifact_id: str = Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
    offset: int = Field(ge=0)
    complete: bool | None = None
    max_chunk_bytes: int | None = Field(default=None, ge=1)


class ArtifactChunkStored(_Controlled):
    """The answer to one chunk: the server's offset now (None: the chunk's end) and
    whether the artifact is complete and verified."""

    offset: int | None = Field(default=None, ge=0)
    complete: bool | None = None
