"""Fleet: job requirements, offers with a short reservation, and what the shared re-check
looks up (jobs that became available, keys and agents revoked since its last look).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json_type() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("training_jobs") as batch:
        batch.add_column(sa.Column("requirements", _json_type(), nullable=True))
        batch.add_column(sa.Column("available_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("offered_to", sa.String(128), nullable=True))
    op.execute("UPDATE training_jobs SET available_at = created_at")
    with op.batch_alter_table("training_jobs") as batch:
        batch.alter_column("available_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch.create_index("ix_training_jobs_available", ["status", "available_at"])
    op.create_index("ix_api_keys_revoked_at", "api_keys", ["revoked_at"])
    op.create_index("ix_training_agents_revoked_at", "training_agents", ["revoked_at"])


def downgrade() -> None:
    op.drop_index("ix_training_agents_revoked_at", table_name="training_agents")
    op.drop_index("ix_api_keys_revoked_at", table_name="api_keys")
    with op.batch_alter_table("training_jobs") as batch:
        batch.drop_index("ix_training_jobs_available")
        for column in ("offered_to", "available_at", "requirements"):
            batch.drop_column(column)
