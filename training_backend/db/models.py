"""The tables: people and their credentials, jobs with reports and artifacts, and agents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from training_backend.db.base import Base
from training_backend.db.types import (
    JsonDocument,
    NullableJsonDocument,
    UTCDateTime,
    new_id,
    utcnow,
)

_ID = String(36)


def _user_fk() -> ForeignKey:
    return ForeignKey("users.id", ondelete="CASCADE")


def _job_fk() -> ForeignKey:
    return ForeignKey("training_jobs.id", ondelete="CASCADE")


class User(Base):
    """A person who owns keys, jobs and agents."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(_ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    password_hash: Mapped[str | None] = mapped_column(Text)  # set by the web login (later)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserSession(Base):
    """A browser login; only the token's hash is stored."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(_ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(_ID, _user_fk(), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiKey(Base):
    """An API key (``wak_…``), stored as the SHA-256 of the whole key."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(_ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(_ID, _user_fk(), index=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(12))  # first characters, for display only
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # the O(1) lookup
    scopes: Mapped[list[str]] = mapped_column(JsonDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # The agent an enrollment made this key for: revoking that agent revokes the key.
    agent_id: Mapped[str | None] = mapped_column(String(128))


class EnrollmentToken(Base):
    """A single-use ``wae_…`` token that an installer trades for an agent's API key.

    Stored as its SHA-256 like a key. ``used_at`` is set once, by the conditional
    ``UPDATE`` that spends it; ``agent_id`` and ``api_key_id`` then say what it made.
    """

    __tablename__ = "enrollment_tokens"

    id: Mapped[str] = mapped_column(_ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(_ID, _user_fk(), index=True)
    prefix: Mapped[str] = mapped_column(String(12))  # first characters, for display only
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    agent_id: Mapped[str | None] = mapped_column(String(128))
    hostname: Mapped[str | None] = mapped_column(String(255))
    api_key_id: Mapped[str | None] = mapped_column(
        _ID, ForeignKey("api_keys.id", ondelete="SET NULL")
    )


class SignInLink(Base):
    """A single-use sign-in link (``training-agent demo --serve``): its token, stored as
    a SHA-256, opens one session of ``user_id`` until ``expires_at``."""

    __tablename__ = "sign_in_links"

    id: Mapped[str] = mapped_column(_ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(_ID, _user_fk(), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Dataset(Base):
    """A dataset file uploaded to the backend; its bytes live in the datasets directory."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(_ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(_ID, _user_fk(), index=True)
    filename: Mapped[str] = mapped_column(String(255))  # as uploaded, cleaned; display only
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # The file's name inside the datasets directory: chosen by the backend, never by a user.
    storage_key: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TrainingJob(Base):
    """A training job: what to run, who runs it, and a summary of its latest report."""

    __tablename__ = "training_jobs"
    __table_args__ = (
        Index("ix_training_jobs_poll", "user_id", "status", "created_at"),
        Index("ix_training_jobs_agent", "agent_id", "status"),
        Index("ix_training_jobs_lease", "status", "lease_expires_at"),
        Index("ix_training_jobs_available", "status", "available_at"),
    )

    id: Mapped[str] = mapped_column(_ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(_ID, _user_fk())
    status: Mapped[str] = mapped_column(String(16), default="pending")
    agent_id: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the agent first used the token of its claim: until then the claim answer may
    # have been lost, and the same agent may claim the job again (services.claims).
    claim_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    job_token_hash: Mapped[str | None] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    model_name: Mapped[str | None] = mapped_column(Text)
    dataset_path: Mapped[str | None] = mapped_column(Text)
    dataset_id: Mapped[str | None] = mapped_column(
        _ID, ForeignKey("datasets.id", ondelete="SET NULL")
    )
    total_steps: Mapped[int | None] = mapped_column(Integer)
    total_epochs: Mapped[float | None] = mapped_column(Float)
    current_step: Mapped[int | None] = mapped_column(Integer)
    current_epoch: Mapped[float | None] = mapped_column(Float)
    loss: Mapped[float | None] = mapped_column(Float)  # latest train_loss
    eval_loss: Mapped[float | None] = mapped_column(Float)
    learning_rate: Mapped[float | None] = mapped_column(Float)
    grad_norm: Mapped[float | None] = mapped_column(Float)
    samples_per_second: Mapped[float | None] = mapped_column(Float)
    tokens_per_second: Mapped[float | None] = mapped_column(Float)
    gpu_memory_allocated_gb: Mapped[float | None] = mapped_column(Float)
    gpu_memory_reserved_gb: Mapped[float | None] = mapped_column(Float)
    gpu_utilization_percent: Mapped[float | None] = mapped_column(Float)
    perplexity: Mapped[float | None] = mapped_column(Float)  # eval perplexity
    train_perplexity: Mapped[float | None] = mapped_column(Float)
    progress: Mapped[float | None] = mapped_column(Float)  # percent, when total_steps is known
    log_line_count: Mapped[int] = mapped_column(Integer, default=0)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=1)
    control: Mapped[str | None] = mapped_column(String(16))  # cancel, pause or resume
    control_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Hashes of tokens whose lease expired: a late report with one gets 409 LEASE_EXPIRED.
    retired_token_hashes: Mapped[list[str] | None] = mapped_column(JsonDocument)
    # Hashes of tokens revoked with their agent or key: a report gets 403 JOB_TOKEN_REVOKED.
    revoked_token_hashes: Mapped[list[str] | None] = mapped_column(JsonDocument)
    # The API key that claimed the job: revoking it revokes the job's token.
    claimed_by_key_id: Mapped[str | None] = mapped_column(String(36))
    error_message: Mapped[str | None] = mapped_column(Text)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    outputs: Mapped[Any | None] = mapped_column(JsonDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Which agents may take it: ``{"agent_id", "labels", "min_gpus", "min_gpu_memory_gb"}``.
    requirements: Mapped[dict[str, Any] | None] = mapped_column(NullableJsonDocument)
    # A pending job is on offer from this moment: when it was submitted or re-queued, or
    # when the reservation of the agent it was last offered to (``offered_to``) lapses.
    available_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    offered_to: Mapped[str | None] = mapped_column(String(128), index=True)


class TrainingMetric(Base):
    """One metric point of a job; ``(job_id, step)`` is its identity (re-sends replace)."""

    __tablename__ = "training_metrics"

    job_id: Mapped[str] = mapped_column(_ID, _job_fk(), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    epoch: Mapped[float] = mapped_column(Float)
    train_loss: Mapped[float | None] = mapped_column(Float)
    eval_loss: Mapped[float | None] = mapped_column(Float)
    learning_rate: Mapped[float | None] = mapped_column(Float)
    grad_norm: Mapped[float | None] = mapped_column(Float)
    perplexity: Mapped[float | None] = mapped_column(Float)
    train_perplexity: Mapped[float | None] = mapped_column(Float)
    samples_per_second: Mapped[float | None] = mapped_column(Float)
    tokens_per_second: Mapped[float | None] = mapped_column(Float)
    gpu_memory_allocated_gb: Mapped[float | None] = mapped_column(Float)
    gpu_memory_reserved_gb: Mapped[float | None] = mapped_column(Float)
    gpu_utilization_percent: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JobLog(Base):
    """One log line of a job; ``line_no`` counts from 0 in the job's log stream."""

    __tablename__ = "job_logs"

    job_id: Mapped[str] = mapped_column(_ID, _job_fk(), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)


class Artifact(Base):
    """A file a job sent back (an adapter, a model...); its bytes live in the artifact store.

    ``received_bytes`` counts the bytes stored from offset 0; ``complete`` is set only once
    all ``size_bytes`` arrived and their SHA-256 matched ``sha256``. ``upload_state`` is
    what the store needs to go on with an unfinished upload (an S3 multipart upload's id).
    """

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("job_id", "name"),)

    id: Mapped[str] = mapped_column(_ID, primary_key=True, default=new_id)
    job_id: Mapped[str] = mapped_column(_ID, _job_fk())
    user_id: Mapped[str] = mapped_column(_ID, _user_fk(), index=True)  # the quota's owner
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))  # adapter, model, checkpoint or file
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    received_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    # The object's name in the store: chosen by the backend, never by a request.
    storage_key: Mapped[str] = mapped_column(String(255), unique=True)
    upload_state: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TrainingAgent(Base):
    """An agent as last seen by its polls; one row per ``(user_id, agent_id)``."""

    __tablename__ = "training_agents"
    __table_args__ = (UniqueConstraint("user_id", "agent_id"),)

    id: Mapped[str] = mapped_column(_ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(_ID, _user_fk())
    agent_id: Mapped[str] = mapped_column(String(128), index=True)
    hostname: Mapped[str | None] = mapped_column(String(255))
    platform: Mapped[str | None] = mapped_column(String(16))  # linux, darwin or windows
    version: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="online")
    last_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # ``metadata`` is reserved on declarative classes, hence the trailing underscore.
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JsonDocument, default=dict)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # The end of the long poll it last started to hold: "connected now" until then.
    connected_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


#: Metric keys a point may carry besides ``step`` and ``epoch``.
METRIC_FIELDS: tuple[str, ...] = (
    "train_loss",
    "eval_loss",
    "learning_rate",
    "grad_norm",
    "perplexity",
    "train_perplexity",
    "samples_per_second",
    "tokens_per_second",
    "gpu_memory_allocated_gb",
    "gpu_memory_reserved_gb",
    "gpu_utilization_percent",
)


class MetricSeries(Base):
    """One value of a point's ``extra`` series (feature ``metrics_extra``), by name.

    A row per ``(job_id, step, name)``: a re-sent point replaces the values it carries
    and keeps the others, as its fixed metrics do.
    """

    __tablename__ = "training_metric_series"

    job_id: Mapped[str] = mapped_column(_ID, _job_fk(), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[float] = mapped_column(Float)


class RateLimitBucket(Base):
    """A rate-limit bucket shared by every backend process (``services.shared_limits``):
    its tokens as counted at ``updated_at`` (wall-clock seconds since the epoch)."""

    __tablename__ = "rate_limit_buckets"

    bucket: Mapped[str] = mapped_column(String(80), primary_key=True)  # scope:hash
    tokens: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float, index=True)
