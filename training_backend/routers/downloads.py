"""Agent downloads for each platform, and the setup instructions the page shows."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response

from training_backend.deps import CurrentUser, Settings
from training_backend.errors import ApiError
from training_backend.platforms import DISPLAY_NAMES, PLATFORMS, detect_platform, parse_platform
from training_backend.public_url import backend_url
from training_backend.routers.enroll_download import enrolled_download
from training_backend.schemas.downloads import ArtifactInfo, DownloadsList, SetupAnswer
from training_backend.services import downloads as service
from training_backend.settings import BackendSettings

router = APIRouter(prefix="/api/workers", tags=["downloads"])

ArchQuery = Annotated[str | None, Query(max_length=16)]


def _artifact(settings: BackendSettings, platform: str, arch: str | None) -> service.Artifact:
    checked = parse_platform(platform)
    if checked is None:
        raise service.invalid_platform(platform)
    return service.artifact_for(
        settings.releases_dir,
        version=settings.agent_version,
        platform=checked,
        arch=service.parse_arch(arch, checked),
    )


def _info(artifact: service.Artifact, url: str) -> ArtifactInfo:
    available = artifact.exists()
    return ArtifactInfo(
        platform=artifact.platform,
        display_name=DISPLAY_NAMES[artifact.platform],
        arch=artifact.arch,
        version=artifact.version,
        filename=artifact.filename,
        available=available,
        sha256=service.sha256_of(artifact) if available else None,
        size_bytes=artifact.path.stat().st_size if available else None,
        download_url=service.download_url(url, artifact),
        message=None if available else artifact.missing_error().message,
    )


@router.get("/download/{platform}")
def download(
    request: Request,
    platform: str,
    settings: Settings,
    arch: ArchQuery = None,
    enroll: Annotated[bool, Query()] = False,
) -> Response:
    """Stream the agent archive for ``platform`` (linux, darwin, windows).

    ``arch`` (amd64, arm64) picks the build; by default amd64, arm64 on macOS. The
    answer carries ``Content-Length`` and ``X-Checksum-SHA256``; 404
    ``ARTIFACT_NOT_FOUND`` when the releases directory lacks the archive.

    ``enroll=1`` (signed-in users only) adds ``training-agent.enroll.json`` beside the
    executable: this backend's URL and a new single-use enrollment token, so the
    installer needs no key. That archive is built as it is sent (no checksum header,
    ``Cache-Control: no-store``); the executable inside is the published one.
    """
    artifact = _artifact(settings, platform, arch)
    if enroll:
        return enrolled_download(request, settings, artifact)
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


def downloads_list(request: Request, settings: BackendSettings) -> DownloadsList:
    """Every platform's default build, and the platform the request's browser runs on."""
    url = backend_url(request, settings)
    artifacts = [_artifact(settings, platform, None) for platform in PLATFORMS]
    return DownloadsList(
        version=settings.agent_version,
        detected_platform=detect_platform(request.headers.get("user-agent")),
        artifacts=[_info(artifact, url) for artifact in artifacts],
    )


@router.get("/downloads")
def downloads(request: Request, settings: Settings) -> DownloadsList:
    """Every platform's default build: version, file name, availability and checksum."""
    return downloads_list(request, settings)


@router.get("/setup")
def setup(
    request: Request,
    user: CurrentUser,
    settings: Settings,
    platform: Annotated[str | None, Query(max_length=16)] = None,
    arch: ArchQuery = None,
) -> SetupAnswer:
    """Download URL, checksum and install commands for ``platform`` (default: detected).

    The commands set ``API_KEY`` (as ``<API_KEY>``, which the page replaces with the key
    it just created) and ``BACKEND_URL``: ``sh`` for Linux and macOS, PowerShell for
    Windows. ``commands`` is null while the archive is not available.
    """
    chosen = platform or detect_platform(request.headers.get("user-agent"))
    if chosen is None:
        message = f"Say which platform: add ?platform= with one of {', '.join(PLATFORMS)}"
        raise ApiError(400, "INVALID_PLATFORM", message)
    artifact = _artifact(settings, chosen, arch)
    url = backend_url(request, settings)
    info = _info(artifact, url)
    commands = None
    if info.sha256 is not None:
        commands = service.install_commands(artifact, sha256=info.sha256, backend_url=url)
    return SetupAnswer(
        **info.model_dump(),
        backend_url=url,
        shell="powershell" if artifact.platform == "windows" else "sh",
        api_key_placeholder=service.API_KEY_PLACEHOLDER,
        commands=commands,
    )
