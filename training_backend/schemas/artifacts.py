"""Artifact bodies: what an agent declares and is answered, and what owners see."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from training_backend.body import validate
from training_backend.schemas.reports import JobTokenAnswer

#: Kinds of output a trainer declares (``{"type": "output", "kind": ...}``).
ARTIFACT_KINDS = ("adapter", "model", "checkpoint", "file")
#: Largest artifact anyone could mean (1 PiB); the user's quota is the real limit.
MAX_ARTIFACT_BYTES = 2**50
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


class ArtifactDeclare(BaseModel):
    """``POST /api/training/local/{job_id}/artifacts``: an upload the agent is about to send."""

    model_config = ConfigDict(extra="ignore")

    name: Annotated[str, Field(min_length=1, max_length=255)]
    """Unique within the job; shown to people and used as the download's file name."""
    kind: Literal["adapter", "model", "checkpoint", "file"]
    size_bytes: Annotated[StrictInt, Field(ge=0, le=MAX_ARTIFACT_BYTES)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]

    @field_validator("name")
    @classmethod
    def _a_file_name(cls, name: str) -> str:
        if _UNSAFE_NAME.search(name) or name.strip() in ("", ".", ".."):
            raise ValueError("must be a file name: no slashes or control characters")
        return name

    @field_validator("sha256")
    @classmethod
    def _lower_case(cls, digest: str) -> str:
        return digest.lower()

    @classmethod
    def parse(cls, data: dict[str, Any]) -> ArtifactDeclare:
        """Validate a declaration (400 ``INVALID_REQUEST`` naming the field)."""
        return validate(cls, data)


class ArtifactProgress(JobTokenAnswer):
    """Answer to a declaration and to each chunk: where the upload stands on the backend."""

    artifact_id: str
    offset: int
    """Bytes the backend holds from the start: the next chunk starts here."""
    complete: bool
    """All bytes arrived and their SHA-256 matched: nothing more to send."""
    max_chunk_bytes: int
    """The largest chunk body this backend accepts."""


class ArtifactPublic(BaseModel):
    """An artifact as its owner sees it; only ``complete`` ones can be downloaded."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    kind: str
    size_bytes: int
    sha256: str
    complete: bool
    received_bytes: int
    created_at: datetime
    completed_at: datetime | None


class ArtifactList(BaseModel):
    """``GET /api/training/jobs/{job_id}/artifacts``."""

    artifacts: list[ArtifactPublic]
