"""Bodies of the downloads endpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class ArtifactInfo(BaseModel):
    """One agent archive as the page lists it."""

    platform: str
    display_name: str
    arch: str
    version: str
    filename: str
    available: bool
    sha256: str | None
    size_bytes: int | None
    download_url: str
    message: str | None = None
    """Why the archive cannot be downloaded (null when it can)."""


class DownloadsList(BaseModel):
    """``GET /api/workers/downloads``: each platform's default build."""

    version: str
    detected_platform: str | None
    artifacts: list[ArtifactInfo]


class SetupAnswer(ArtifactInfo):
    """``GET /api/workers/setup``: one build and the commands that install it."""

    backend_url: str
    shell: Literal["sh", "powershell"]
    api_key_placeholder: str
    commands: str | None
    operator_commands: str | None = None
    """While ``commands`` is null: what this server's administrator runs to make the
    archive available (the page shows it in place of the install commands)."""
