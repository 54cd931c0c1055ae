"""Initial schema: users, sessions, API keys, jobs, metrics, logs and agents.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Written out by hand rather than importing the models: a migration must keep creating
the schema of its day even after the models move on.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id(name: str = "id") -> sa.Column[str]:
    return sa.Column(name, sa.String(36), nullable=False)


def _time(name: str, *, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _json(name: str, *, nullable: bool = False) -> sa.Column[object]:
    json_type = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    return sa.Column(name, json_type, nullable=nullable)


def _floats(*names: str) -> list[sa.Column[float]]:
    return [sa.Column(name, sa.Float(), nullable=True) for name in names]


def _owner_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], name=f"fk_{table}_user_id_users", ondelete="CASCADE"
    )


def _job_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["job_id"],
        ["training_jobs.id"],
        name=f"fk_{table}_job_id_training_jobs",
        ondelete="CASCADE",
    )


_METRICS = (
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


def _create_users() -> None:
    op.create_table(
        "users",
        _id(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        _time("created_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("name", name="uq_users_name"),
    )


def _create_sessions() -> None:
    op.create_table(
        "sessions",
        _id(),
        _id("user_id"),
        sa.Column("token_hash", sa.String(64), nullable=False),
        _time("created_at", nullable=False),
        _time("expires_at", nullable=False),
        _time("revoked_at"),
        _owner_fk("sessions"),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
        sa.UniqueConstraint("token_hash", name="uq_sessions_token_hash"),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])


def _create_api_keys() -> None:
    op.create_table(
        "api_keys",
        _id(),
        _id("user_id"),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(12), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        _json("scopes"),
        _time("created_at", nullable=False),
        _time("last_used_at"),
        _time("revoked_at"),
        _owner_fk("api_keys"),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id"])


def _create_training_jobs() -> None:
    op.create_table(
        "training_jobs",
        _id(),
        _id("user_id"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("agent_id", sa.String(128), nullable=True),
        _time("claimed_at"),
        sa.Column("job_token_hash", sa.String(64), nullable=True),
        _json("config"),
        sa.Column("model_name", sa.Text(), nullable=True),
        sa.Column("dataset_path", sa.Text(), nullable=True),
        sa.Column("total_steps", sa.Integer(), nullable=True),
        sa.Column("total_epochs", sa.Float(), nullable=True),
        sa.Column("current_step", sa.Integer(), nullable=True),
        sa.Column("current_epoch", sa.Float(), nullable=True),
        *_floats("loss", "eval_loss", "learning_rate", "grad_norm"),
        *_floats("samples_per_second", "tokens_per_second"),
        *_floats("gpu_memory_allocated_gb", "gpu_memory_reserved_gb", "gpu_utilization_percent"),
        *_floats("perplexity", "train_perplexity", "progress"),
        sa.Column("log_line_count", sa.Integer(), nullable=False),
        _time("lease_expires_at"),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        _json("outputs", nullable=True),
        _time("created_at", nullable=False),
        _time("updated_at", nullable=False),
        _time("started_at"),
        _time("completed_at"),
        _owner_fk("training_jobs"),
        sa.PrimaryKeyConstraint("id", name="pk_training_jobs"),
    )
    op.create_index("ix_training_jobs_poll", "training_jobs", ["user_id", "status", "created_at"])
    op.create_index("ix_training_jobs_agent", "training_jobs", ["agent_id", "status"])


def _create_training_metrics() -> None:
    op.create_table(
        "training_metrics",
        _id("job_id"),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Float(), nullable=False),
        *_floats(*_METRICS),
        _time("created_at", nullable=False),
        _time("updated_at", nullable=False),
        _job_fk("training_metrics"),
        sa.PrimaryKeyConstraint("job_id", "step", name="pk_training_metrics"),
    )


def _create_job_logs() -> None:
    op.create_table(
        "job_logs",
        _id("job_id"),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        _job_fk("job_logs"),
        sa.PrimaryKeyConstraint("job_id", "line_no", name="pk_job_logs"),
    )


def _create_training_agents() -> None:
    op.create_table(
        "training_agents",
        _id(),
        _id("user_id"),
        sa.Column("agent_id", sa.String(128), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=True),
        sa.Column("platform", sa.String(16), nullable=True),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        _time("last_poll_at"),
        _time("registered_at", nullable=False),
        _json("metadata"),
        _time("revoked_at"),
        _owner_fk("training_agents"),
        sa.PrimaryKeyConstraint("id", name="pk_training_agents"),
        sa.UniqueConstraint("user_id", "agent_id", name="uq_training_agents_user_id_agent_id"),
    )
    op.create_index("ix_training_agents_agent_id", "training_agents", ["agent_id"])


def upgrade() -> None:
    _create_users()
    _create_sessions()
    _create_api_keys()
    _create_training_jobs()
    _create_training_metrics()
    _create_job_logs()
    _create_training_agents()


def downgrade() -> None:
    for table in (
        "training_agents",
        "job_logs",
        "training_metrics",
        "training_jobs",
        "api_keys",
        "sessions",
        "users",
    ):
        op.drop_table(table)
