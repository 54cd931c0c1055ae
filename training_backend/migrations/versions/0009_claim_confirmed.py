"""Claims confirmed: when the agent first used the token of its claim.

A claim whose answer was lost (the backend committed it, the connection broke) is
given again to the same agent while it is unconfirmed (``services.claims``).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("training_jobs") as batch:
        batch.add_column(sa.Column("claim_confirmed_at", sa.DateTime(timezone=True), nullable=True))
    # Every job claimed before this revision counts as confirmed: none is re-offered.
    op.execute(
        "UPDATE training_jobs SET claim_confirmed_at = claimed_at WHERE claimed_at IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("training_jobs") as batch:
        batch.drop_column("claim_confirmed_at")
