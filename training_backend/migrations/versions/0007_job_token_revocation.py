"""Job tokens die with the agent or API key that claimed them.

``claimed_by_key_id`` says which key claimed a job, so revoking that key can retire the
job's token; ``revoked_token_hashes`` keeps the retired tokens, so a report with one is
told 403 ``JOB_TOKEN_REVOKED`` (rather than 401) and its agent stops the job.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json_type() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("training_jobs") as batch:
        batch.add_column(sa.Column("claimed_by_key_id", sa.String(36), nullable=True))
        batch.add_column(sa.Column("revoked_token_hashes", _json_type(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("training_jobs") as batch:
        batch.drop_column("revoked_token_hashes")
        batch.drop_column("claimed_by_key_id")
