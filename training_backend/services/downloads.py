"""Agent release archives in the releases directory: names, checksums, install commands.

The releases directory (setting ``releases_dir``) holds, for each version,

    training-agent-<version>-linux-<arch>.tar.gz
    training-agent-<version>-darwin-<arch>.tar.gz
    training-agent-<version>-windows-<arch>.zip
    SHA256SUMS        lines of "<sha256 hex>  <file name>" (sha256sum's format)

with ``<arch>`` one of ``amd64`` and ``arm64``. Each archive holds one top-level folder
named like the archive without its extension, with ``install.sh`` (``install.ps1`` on
Windows) and the ``training-agent`` executable inside.

File names are only ever built from the constants below and the configured version
(checked against a strict pattern in settings), never from request text, so no request
can name another file. A checksum is read from ``SHA256SUMS`` when it lists the file,
else computed once and cached until the file changes.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

from training_backend.errors import ApiError
from training_backend.platforms import (
    DISPLAY_NAMES,
    PLATFORMS,
    Platform,
    detect_platform,
    parse_platform,
)
from training_backend.schemas.downloads import ArtifactInfo, DownloadsList
from training_backend.settings import BackendSettings

Arch: TypeAlias = Literal["amd64", "arm64"]
ARCHES: tuple[Arch, ...] = ("amd64", "arm64")
#: The build offered when the request does not say: Apple's current Macs are arm64.
DEFAULT_ARCH: dict[Platform, Arch] = {"linux": "amd64", "darwin": "arm64", "windows": "amd64"}
CHECKSUMS_FILE = "SHA256SUMS"
#: Stands for the user's API key in the install commands; the page puts the key in.
API_KEY_PLACEHOLDER = "<API_KEY>"
_EXTENSION: dict[Platform, str] = {"linux": "tar.gz", "darwin": "tar.gz", "windows": "zip"}
_MEDIA_TYPE: dict[Platform, str] = {
    "linux": "application/gzip",
    "darwin": "application/gzip",
    "windows": "application/zip",
}
_SUMS_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")
RELEASES_URL_ENV = "TRAINING_BACKEND_RELEASES_URL"
#: The checksum of an archive not fetched yet, as the mirror's SHA256SUMS lists it.
UpstreamSha256: TypeAlias = Callable[["Artifact"], str]


@dataclass(frozen=True)
class Artifact:
    """One agent archive: which build it is and where it lies (``path`` may be absent)."""

    version: str
    platform: Platform
    arch: Arch
    releases_dir: Path

    @property
    def stem(self) -> str:
        """The archive's name without extension, also its top-level folder."""
        return f"training-agent-{self.version}-{self.platform}-{self.arch}"

    @property
    def filename(self) -> str:
        """``training-agent-<version>-<platform>-<arch>.tar.gz`` (``.zip`` on Windows)."""
        return f"{self.stem}.{_EXTENSION[self.platform]}"

    @property
    def media_type(self) -> str:
        """The archive's ``Content-Type``."""
        return _MEDIA_TYPE[self.platform]

    @property
    def path(self) -> Path:
        """Where the archive is expected."""
        return self.releases_dir / self.filename

    def exists(self) -> bool:
        """True when the archive is a file in the releases directory."""
        return self.path.is_file()

    def missing_error(self) -> ApiError:
        """404 ``ARTIFACT_NOT_FOUND``, saying what the administrator must run."""
        name = f"{DISPLAY_NAMES[self.platform]} ({self.arch})"
        message = (
            f"The training agent {self.version} for {name} is not on this server yet; its "
            f"administrator adds it with: {self.add_command()} (or sets "
            "TRAINING_BACKEND_RELEASES_URL to fetch releases)"
        )
        return ApiError(404, "ARTIFACT_NOT_FOUND", message)

    def add_command(self) -> str:
        """The command that puts this archive on the server."""
        return f"training-backend releases add {self.filename}"

    def operator_commands(self, *, mirrored: bool) -> str:
        """What the administrator runs on the server to make this archive available."""
        lines = [
            f"# On the server, with {self.filename} from packaging/build or the release page:",
            self.add_command(),
        ]
        if not mirrored:
            lines += [
                "# or let the server fetch each release the first time it is asked for:",
                f"export {RELEASES_URL_ENV}=https://github.com/OWNER/REPO/releases/download/v{{version}}",
            ]
        return "\n".join(lines)


def invalid_platform(value: str) -> ApiError:
    """400 ``INVALID_PLATFORM`` listing the valid platforms."""
    shown = value[:40]
    message = f"Invalid platform '{shown}'. Must be one of: {', '.join(PLATFORMS)}"
    return ApiError(400, "INVALID_PLATFORM", message)


def parse_arch(value: str | None, platform: Platform) -> Arch:
    """The requested architecture, the platform's default when ``None`` (400 if unknown)."""
    if value is None:
        return DEFAULT_ARCH[platform]
    for arch in ARCHES:
        if value == arch:
            return arch
    message = f"Invalid arch '{value[:40]}'. Must be one of: {', '.join(ARCHES)}"
    raise ApiError(400, "INVALID_ARCH", message)


def artifact_for(releases_dir: Path, *, version: str, platform: Platform, arch: Arch) -> Artifact:
    """The archive of that build (whether or not it is there)."""
    return Artifact(version=version, platform=platform, arch=arch, releases_dir=releases_dir)


def artifact_of(settings: BackendSettings, platform: str, arch: str | None) -> Artifact:
    """The configured version's build a request names: ``platform`` (400 if unknown) and
    ``arch`` (400 if unknown; ``None``: the platform's default)."""
    checked = parse_platform(platform)
    if checked is None:
        raise invalid_platform(platform)
    return artifact_for(
        settings.releases_dir,
        version=settings.agent_version,
        platform=checked,
        arch=parse_arch(arch, checked),
    )


def artifact_info(
    artifact: Artifact, *, backend_url: str, upstream: UpstreamSha256 | None = None
) -> ArtifactInfo:
    """The archive as the page lists it: availability, checksum, size and URL. One not
    here yet but fetchable (``upstream`` gives its checksum) is available, size unknown."""
    available = artifact.exists()
    if not available and upstream is not None:
        return _upstream_info(artifact, backend_url, upstream)
    return ArtifactInfo(
        platform=artifact.platform,
        display_name=DISPLAY_NAMES[artifact.platform],
        arch=artifact.arch,
        version=artifact.version,
        filename=artifact.filename,
        available=available,
        sha256=sha256_of(artifact) if available else None,
        size_bytes=artifact.path.stat().st_size if available else None,
        download_url=download_url(backend_url, artifact),
        message=None if available else artifact.missing_error().message,
    )


def _upstream_info(artifact: Artifact, backend_url: str, upstream: UpstreamSha256) -> ArtifactInfo:
    try:
        sha256, message = upstream(artifact), None
    except ApiError as exc:
        sha256, message = None, exc.message
    return ArtifactInfo(
        platform=artifact.platform,
        display_name=DISPLAY_NAMES[artifact.platform],
        arch=artifact.arch,
        version=artifact.version,
        filename=artifact.filename,
        available=sha256 is not None,
        sha256=sha256,
        size_bytes=None,
        download_url=download_url(backend_url, artifact),
        message=message,
    )


def list_downloads(
    settings: BackendSettings,
    *,
    backend_url: str,
    user_agent: str | None,
    upstream: UpstreamSha256 | None = None,
) -> DownloadsList:
    """Every platform's default build, and the platform of the browser ``user_agent`` names."""
    artifacts = [artifact_of(settings, platform, None) for platform in PLATFORMS]
    return DownloadsList(
        version=settings.agent_version,
        detected_platform=detect_platform(user_agent),
        artifacts=[
            artifact_info(artifact, backend_url=backend_url, upstream=upstream)
            for artifact in artifacts
        ],
    )


def sha256_of(artifact: Artifact) -> str:
    """The archive's SHA-256: from ``SHA256SUMS`` if listed there, else computed (cached)."""
    sums = artifact.releases_dir / CHECKSUMS_FILE
    if sums.is_file():
        stat = sums.stat()
        listed = _read_sums(str(sums), stat.st_size, stat.st_mtime_ns).get(artifact.filename)
        if listed is not None:
            return listed
    return file_sha256(artifact.path)


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, computed once per size and modification time."""
    stat = path.stat()
    return _hash_file(str(path), stat.st_size, stat.st_mtime_ns)


def parse_sums(text: str) -> dict[str, str]:
    """File name to lower-case SHA-256 from ``sha256sum`` output (other lines are ignored).

    >>> parse_sums("ab" * 32 + "  a.zip\\nnot a line\\n")
    {'a.zip': 'abababababababababababababababababababababababababababababababab'}
    """
    sums: dict[str, str] = {}
    for line in text.splitlines():
        match = _SUMS_LINE.match(line.strip())
        if match is not None:
            sums[match.group(2).strip()] = match.group(1).lower()
    return sums


@functools.lru_cache(maxsize=16)
def _read_sums(path: str, size: int, mtime_ns: int) -> dict[str, str]:
    # size and mtime are part of the cache key: a rewritten file is read again.
    return parse_sums(Path(path).read_text(encoding="utf-8", errors="replace"))


@functools.lru_cache(maxsize=64)
def _hash_file(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as archive:
        return hashlib.file_digest(archive, "sha256").hexdigest()


def download_url(backend_url: str, artifact: Artifact) -> str:
    """Where this backend serves the archive."""
    return f"{backend_url}/api/workers/download/{artifact.platform}?arch={artifact.arch}"


def install_commands(artifact: Artifact, *, sha256: str, backend_url: str) -> str:
    """The commands that download, verify and install the agent, to paste as one block.

    ``sh`` for Linux and macOS, PowerShell for Windows. They set ``API_KEY`` (as
    ``API_KEY_PLACEHOLDER``, which the page replaces) and ``BACKEND_URL`` for the
    installer only, and stop at the first failure, so a download whose checksum does not
    match is never unpacked. The ``sh`` block is one command line starting with a space,
    which shells that ignore such lines (bash's usual ``HISTCONTROL=ignoreboth``) keep out
    of their history, key included.
    """
    url = download_url(backend_url, artifact)
    name = artifact.filename
    if artifact.platform == "windows":
        return "\n".join(
            [
                "& {",
                "  $ErrorActionPreference = 'Stop'",
                f"  Invoke-WebRequest -UseBasicParsing -Uri '{url}' -OutFile '{name}'",
                f"  if ((Get-FileHash '{name}' -Algorithm SHA256).Hash -ne '{sha256}') "
                "{ throw 'Checksum mismatch: delete the download and try again' }",
                f"  Expand-Archive -Force -Path '{name}' -DestinationPath .",
                f"  $env:API_KEY = '{API_KEY_PLACEHOLDER}'; $env:BACKEND_URL = '{backend_url}'",
                # Windows runs no scripts by default (execution policy Restricted):
                # this one child PowerShell may; the key reaches it in its environment.
                "  try { powershell.exe -NoProfile -ExecutionPolicy Bypass -File "
                f"'.\\{artifact.stem}\\install.ps1'",
                "    if ($LASTEXITCODE -ne 0) { throw 'The installation failed (see above)' } }",
                "  finally { Remove-Item Env:API_KEY }",
                "}",
            ]
        )
    check = "sha256sum -c -" if artifact.platform == "linux" else "shasum -a 256 -c -"
    return " &&\n".join(
        [
            f" curl -fL -o '{name}' '{url}'",
            f"echo '{sha256}  {name}' | {check}",
            f"tar -xzf '{name}'",
            f"API_KEY='{API_KEY_PLACEHOLDER}' BACKEND_URL='{backend_url}' "
            f"'./{artifact.stem}/install.sh'",
        ]
    )
