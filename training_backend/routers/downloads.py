"""Agent downloads for each platform, and the setup instructions the page shows."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from sqlalchemy.orm import Session, sessionmaker

from training_backend.db.types import utcnow
from training_backend.deps import (
    CurrentUser,
    ReleaseMirrorDep,
    SessionFactoryDep,
    SettingsDep,
    current_user,
)
from training_backend.errors import ApiError
from training_backend.platforms import PLATFORMS, detect_platform
from training_backend.public_url import backend_url
from training_backend.schemas.downloads import DownloadsList, SetupAnswer
from training_backend.services import downloads as service
from training_backend.services.enrolled_downloads import enrolled_archive
from training_backend.settings import BackendSettings

router = APIRouter(prefix="/api/workers", tags=["downloads"])

ArchQuery = Annotated[str | None, Query(max_length=16)]


def _enrolled(
    request: Request,
    sessions: sessionmaker[Session],
    settings: BackendSettings,
    artifact: service.Artifact,
) -> StreamingResponse:
    # A session only here: a plain download needs neither the database nor a user.
    with sessions() as db:
        user = current_user(request, db, settings)
        url = backend_url(request, settings)
        ttl = timedelta(minutes=settings.enrollment_ttl_minutes)
        archive = enrolled_archive(
            db,
            user_id=user.id,
            artifact=artifact,
            backend_url=url,
            ttl=ttl,
            now=utcnow(),
            max_pending=settings.max_pending_enrollments_per_user,
        )
    headers = {
        "Cache-Control": "no-store",
        "Content-Disposition": f'attachment; filename="{artifact.filename}"',
    }
    if archive.length is not None:
        headers["Content-Length"] = str(archive.length)
    return StreamingResponse(archive.chunks, media_type=artifact.media_type, headers=headers)


@router.get("/download/{platform}")
def download(
    request: Request,
    platform: str,
    settings: SettingsDep,
    sessions: SessionFactoryDep,
    mirror: ReleaseMirrorDep,
    arch: ArchQuery = None,
    enroll: Annotated[bool, Query()] = False,
) -> Response:
    """Stream the agent archive for ``platform`` (linux, darwin, windows).

    ``arch`` (amd64, arm64) picks the build; by default amd64, arm64 on macOS. The
    answer carries ``Content-Length`` and ``X-Checksum-SHA256``; 404
    ``ARTIFACT_NOT_FOUND`` when the releases directory lacks the archive; with
    ``releases_url`` set it is fetched and checked first (502 ``RELEASE_FETCH_FAILED``
    saying why when that fails).

    ``enroll=1`` (signed-in users only) adds ``training-agent.enroll.json`` beside the
    executable: this backend's URL and a new single-use enrollment token, so the
    installer needs no key. That archive is built as it is sent (no checksum header,
    ``Cache-Control: no-store``); the executable inside is the published one.
    """
    artifact = service.artifact_of(settings, platform, arch)
    mirror.ensure(settings, artifact)
    if enroll:
        return _enrolled(request, sessions, settings, artifact)
    try:
        stat = artifact.path.stat()
        sha256 = service.sha256_of(artifact)
    except FileNotFoundError:
        raise artifact.missing_error() from None
    return FileResponse(
        artifact.path,
        media_type=artifact.media_type,
        filename=artifact.filename,
        stat_result=stat,
        headers={"X-Checksum-SHA256": sha256, "Cache-Control": "public, max-age=3600"},
    )


@router.get("/downloads")
def downloads(request: Request, settings: SettingsDep, mirror: ReleaseMirrorDep) -> DownloadsList:
    """Every platform's default build: version, file name, availability and checksum."""
    url = backend_url(request, settings)
    user_agent = request.headers.get("user-agent")
    upstream = mirror.upstream_for(settings)
    return service.list_downloads(
        settings, backend_url=url, user_agent=user_agent, upstream=upstream
    )


@router.get("/setup")
def setup(
    request: Request,
    user: CurrentUser,
    settings: SettingsDep,
    mirror: ReleaseMirrorDep,
    platform: Annotated[str | None, Query(max_length=16)] = None,
    arch: ArchQuery = None,
) -> SetupAnswer:
    """Download URL, checksum and install commands for ``platform`` (default: detected).

    The commands set ``API_KEY`` (as ``<API_KEY>``, which the page replaces with the key
    it just created) and ``BACKEND_URL``: ``sh`` for Linux and macOS, PowerShell for
    Windows. While the archive is not available ``commands`` is null and
    ``operator_commands`` says what the administrator runs on the server.
    """
    chosen = platform or detect_platform(request.headers.get("user-agent"))
    if chosen is None:
        message = f"Say which platform: add ?platform= with one of {', '.join(PLATFORMS)}"
        raise ApiError(400, "INVALID_PLATFORM", message)
    artifact = service.artifact_of(settings, chosen, arch)
    url = backend_url(request, settings)
    info = service.artifact_info(artifact, backend_url=url, upstream=mirror.upstream_for(settings))
    commands = operator = None
    if info.sha256 is not None:
        commands = service.install_commands(artifact, sha256=info.sha256, backend_url=url)
    else:
        operator = artifact.operator_commands(mirrored=settings.releases_url is not None)
    return SetupAnswer(
        **info.model_dump(),
        backend_url=url,
        shell="powershell" if artifact.platform == "windows" else "sh",
        api_key_placeholder=service.API_KEY_PLACEHOLDER,
        commands=commands,
        operator_commands=operator,
    )
