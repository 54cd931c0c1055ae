"""The agent archive with an enrollment file (``GET /api/workers/download/…?enroll=1``).

The file, ``training-agent.enroll.json`` beside the executable, holds this backend's
URL, a new single-use enrollment token of the signed-in user and its expiry. The
archive is built as it is sent (``tar_append``, ``zip_append``); the release file on
disk is never changed, and the executable's bytes are the published ones.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from training_backend.errors import ApiError
from training_backend.services.downloads import Artifact
from training_backend.services.enrollments import create_enrollment
from training_backend.services.tar_append import ExtraFile, TarGzAppender, UnreadableArchive
from training_backend.services.zip_append import ZipAppender

logger = logging.getLogger(__name__)

ENROLL_FILE_NAME = "training-agent.enroll.json"
ENROLL_FILE_MODE = 0o600  # it holds a secret: owner only once unpacked


def enroll_file(*, url: str, token: str, expires_at: datetime) -> bytes:
    """The enrollment file's content: the backend, the token and when it expires."""
    document = {"backend_url": url, "enrollment_token": token, "expires_at": expires_at.isoformat()}
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


@dataclass(frozen=True)
class EnrolledArchive:
    """An archive with its enrollment file, built as it is read."""

    artifact: Artifact
    chunks: Iterator[bytes]
    length: int | None
    """Known in advance for a zip; a tar.gz is compressed as it is sent."""


def enrolled_archive(
    db: Session,
    *,
    user_id: str,
    artifact: Artifact,
    backend_url: str,
    ttl: timedelta,
    now: datetime,
    max_pending: int = 0,
) -> EnrolledArchive:
    """``artifact`` with a new enrollment token of ``user_id`` inside (404 when the archive
    is missing, 500 when it is damaged: in both cases before a token is made; 409 when the
    user has ``max_pending`` unused tokens already)."""
    if not artifact.exists():
        raise artifact.missing_error()
    appender = _appender(artifact)  # check the archive before a token is made for it
    try:
        row, token = create_enrollment(
            db, user_id=user_id, now=now, ttl=ttl, max_pending=max_pending
        )
    except BaseException:
        appender.close()
        raise
    extra = ExtraFile(
        ENROLL_FILE_NAME,
        enroll_file(url=backend_url, token=token, expires_at=row.expires_at),
        ENROLL_FILE_MODE,
        row.created_at.timestamp(),
    )
    return EnrolledArchive(artifact, appender.stream(extra), appender.length(extra))


def _appender(artifact: Artifact) -> TarGzAppender | ZipAppender:
    executable = "training-agent.exe" if artifact.platform == "windows" else "training-agent"
    kind = ZipAppender if artifact.filename.endswith(".zip") else TarGzAppender
    try:
        return kind(artifact.path, beside=executable, folder=artifact.stem)
    except UnreadableArchive as exc:
        logger.error("cannot add an enrollment file: %s", exc)
        message = (
            f"The release archive {artifact.filename} on this server is damaged; "
            "ask its administrator to put it in the releases directory again"
        )
        raise ApiError(500, "ARTIFACT_UNREADABLE", message) from exc
