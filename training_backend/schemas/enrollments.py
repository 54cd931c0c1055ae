"""Bodies of the enrollment endpoints: tokens for the page, the installer's trade."""

from __future__ import annotations

from datetime import datetime
from typing import Self

from pydantic import BaseModel, ConfigDict, Field

from training_backend.db.models import EnrollmentToken
from training_backend.services.enrollments import enrollment_state


class EnrollmentPublic(BaseModel):
    """A token as listed: never its value or hash; what it enrolled, once spent."""

    id: str
    token_prefix: str
    status: str  # pending, used, revoked or expired
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None
    agent_id: str | None
    hostname: str | None

    @classmethod
    def of(cls, row: EnrollmentToken, *, now: datetime) -> Self:
        """This view of ``row`` at ``now``."""
        return cls(
            id=row.id,
            token_prefix=row.prefix,
            status=enrollment_state(row, now=now),
            created_at=row.created_at,
            expires_at=row.expires_at,
            used_at=row.used_at,
            revoked_at=row.revoked_at,
            agent_id=row.agent_id,
            hostname=row.hostname,
        )


class EnrollmentCreated(BaseModel):
    """``POST /api/workers/enrollments``: the token, shown this once, and where it works."""

    enrollment: EnrollmentPublic
    token: str
    backend_url: str


class EnrollmentList(BaseModel):
    """``GET /api/workers/enrollments``: the caller's recent tokens, newest first."""

    enrollments: list[EnrollmentPublic]
    ttl_minutes: int


class EnrollRequest(BaseModel):
    """``POST /api/training/agent/enroll``: the token and who the installing agent is."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    token: str = Field(max_length=200)
    agent_id: str = Field(min_length=10, max_length=128, pattern=r"^agent_[\x21-\x7e]+$")
    hostname: str | None = Field(default=None, max_length=255)
    platform: str | None = Field(default=None, max_length=16)
    version: str | None = Field(default=None, max_length=64)


class EnrollAnswer(BaseModel):
    """The agent's new ``training`` key (shown once), bound to ``agent_id``."""

    success: bool = True
    api_key: str
    key_prefix: str
    name: str
    agent_id: str
    backend_url: str
