"""Fleet, continued: finding the job reserved for an agent by its id, the rate-limit
buckets every backend process shares, and when an agent's held poll ends.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_training_jobs_offered_to", "training_jobs", ["offered_to"])
    op.create_table(
        "rate_limit_buckets",
        sa.Column("bucket", sa.String(80), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", name="pk_rate_limit_buckets"),
    )
    op.create_index("ix_rate_limit_buckets_updated_at", "rate_limit_buckets", ["updated_at"])
    with op.batch_alter_table("training_agents") as batch:
        batch.add_column(sa.Column("connected_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("training_agents") as batch:
        batch.drop_column("connected_until")
    op.drop_index("ix_rate_limit_buckets_updated_at", table_name="rate_limit_buckets")
    op.drop_table("rate_limit_buckets")
    op.drop_index("ix_training_jobs_offered_to", table_name="training_jobs")
