"""Dispatch: job control, heartbeats, leases, and datasets held by the backend.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json_type() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _create_datasets() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("storage_key", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_datasets_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
        sa.UniqueConstraint("storage_key", name="uq_datasets_storage_key"),
    )
    op.create_index("ix_datasets_user_id", "datasets", ["user_id"])


def upgrade() -> None:
    _create_datasets()
    with op.batch_alter_table("training_jobs") as batch:
        batch.add_column(sa.Column("dataset_id", sa.String(36), nullable=True))
        batch.add_column(sa.Column("control", sa.String(16), nullable=True))
        batch.add_column(
            sa.Column("control_requested_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("last_heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("retired_token_hashes", _json_type(), nullable=True))
        batch.create_foreign_key(
            "fk_training_jobs_dataset_id_datasets",
            "datasets",
            ["dataset_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_index("ix_training_jobs_lease", ["status", "lease_expires_at"])


def downgrade() -> None:
    with op.batch_alter_table("training_jobs") as batch:
        batch.drop_index("ix_training_jobs_lease")
        batch.drop_constraint("fk_training_jobs_dataset_id_datasets", type_="foreignkey")
        for column in (
            "retired_token_hashes",
            "last_heartbeat_at",
            "control_requested_at",
            "control",
            "dataset_id",
        ):
            batch.drop_column(column)
    op.drop_index("ix_datasets_user_id", table_name="datasets")
    op.drop_table("datasets")
