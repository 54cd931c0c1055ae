"""Fleet, continued: finding the job reserved for an agent by its id.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_training_jobs_offered_to", "training_jobs", ["offered_to"])


def downgrade() -> None:
    op.drop_index("ix_training_jobs_offered_to", table_name="training_jobs")
