"""``GET /api/workers/download/{platform}?enroll=1``: the archive with an enrollment file.

The file, ``training-agent.enroll.json`` beside the executable, holds this backend's
URL, a new single-use enrollment token of the signed-in user and its expiry. The
archive is built as it is sent (``tar_append``, ``zip_append``); the release file on
disk is never changed, and the executable's bytes are the published ones.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from fastapi import Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session, sessionmaker

from training_backend.db.types import utcnow
from training_backend.deps import current_user
from training_backend.errors import ApiError
from training_backend.public_url import backend_url
from training_backend.services.downloads import Artifact
from training_backend.services.enrollments import create_enrollment
from training_backend.services.tar_append import ExtraFile, TarGzAppender, UnreadableArchive
from training_backend.services.zip_append import ZipAppender
from training_backend.settings import BackendSettings

logger = logging.getLogger(__name__)

ENROLL_FILE_NAME = "training-agent.enroll.json"
ENROLL_FILE_MODE = 0o600  # it holds a secret: owner only once unpacked
_HEADERS = {"Cache-Control": "no-store"}


def enroll_file(*, url: str, token: str, expires_at: datetime) -> bytes:
    """The enrollment file's content: the backend, the token and when it expires."""
    document = {"backend_url": url, "enrollment_token": token, "expires_at": expires_at.isoformat()}
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def enrolled_download(
    request: Request, settings: BackendSettings, artifact: Artifact
) -> StreamingResponse:
    """The archive of ``artifact`` with a new enrollment file; 401 without a session."""
    factory: sessionmaker[Session] = request.app.state.session_factory
    with factory() as db:
        user = current_user(request, db)
        url = backend_url(request, settings)
        if not artifact.exists():
            raise artifact.missing_error()
        appender = _appender(artifact)  # check the archive before a token is made for it
        try:
            ttl = timedelta(minutes=settings.enrollment_ttl_minutes)
            row, token = create_enrollment(db, user_id=user.id, now=utcnow(), ttl=ttl)
        except BaseException:
            appender.close()
            raise
    extra = ExtraFile(
        ENROLL_FILE_NAME,
        enroll_file(url=url, token=token, expires_at=row.expires_at),
        ENROLL_FILE_MODE,
        row.created_at.timestamp(),
    )
    headers = {**_HEADERS, "Content-Disposition": f'attachment; filename="{artifact.filename}"'}
    length = appender.length(extra)
    if length is not None:
        headers["Content-Length"] = str(length)
    return StreamingResponse(
        appender.stream(extra), media_type=artifact.media_type, headers=headers
    )


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
