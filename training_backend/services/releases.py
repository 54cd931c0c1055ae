"""Adding built agent archives to the releases directory (``training-backend releases add``).

Each archive must be named like a release (``training-agent-<version>-<os>-<arch>.tar.gz``,
``.zip`` for Windows); it is copied in under the same name, replacing an older copy, and
its SHA-256 replaces its line in the directory's ``SHA256SUMS``. When the archive's own
folder has a ``SHA256SUMS`` (what ``packaging/build`` and the release workflow publish)
that lists it, the file must match that line, or nothing is copied: a damaged download
is never served. A signature beside an archive (``<archive>.sig``, ``packaging/build
--sign``) is copied with it; agents check it before they update themselves. Every file
is written to a temporary name and renamed, so the download endpoint never serves a
half-copied archive or a half-written ``SHA256SUMS``.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from training_backend.errors import ApiError
from training_backend.services.downloads import CHECKSUMS_FILE, file_sha256, parse_sums
from training_backend.settings import AGENT_VERSION_PATTERN

SIGNATURE_SUFFIX = ".sig"  # the release signature beside an archive (update/signature.py)

_VERSION = AGENT_VERSION_PATTERN.strip("^$")
ARCHIVE_NAME = re.compile(
    rf"^training-agent-(?P<version>{_VERSION})-"
    r"(?:(?:linux|darwin)-(?:amd64|arm64)\.tar\.gz|windows-(?:amd64|arm64)\.zip)$"
)


@dataclass(frozen=True)
class AddedRelease:
    """One archive now served from the releases directory."""

    filename: str
    sha256: str
    version: str


def add_releases(releases_dir: Path, archives: list[Path]) -> list[AddedRelease]:
    """Copy ``archives`` into ``releases_dir`` and record them in its ``SHA256SUMS``.

    Every archive is checked before any is copied; ``ApiError`` says what is wrong.
    """
    checked = [_check(path) for path in archives]
    releases_dir.mkdir(parents=True, exist_ok=True)
    for path, added in zip(archives, checked, strict=True):
        signature = path.with_name(path.name + SIGNATURE_SUFFIX)
        if signature.is_file():
            _copy_atomically(signature, releases_dir / signature.name)
        _copy_atomically(path, releases_dir / added.filename)
    _record(releases_dir / CHECKSUMS_FILE, checked)
    return checked


def _check(path: Path) -> AddedRelease:
    match = ARCHIVE_NAME.match(path.name)
    if match is None:
        message = (
            f"{path.name} is not named like an agent release "
            "(training-agent-<version>-<linux|darwin>-<amd64|arm64>.tar.gz or "
            "training-agent-<version>-windows-<amd64|arm64>.zip): add the archives "
            "packaging/build made"
        )
        raise ApiError(400, "INVALID_RELEASE_NAME", message)
    if not path.is_file():
        raise ApiError(404, "RELEASE_NOT_FOUND", f"{path} is not a file: give a built archive")
    sha256 = file_sha256(path)
    published = path.parent / CHECKSUMS_FILE
    if published.is_file():
        listed = parse_sums(published.read_text(encoding="utf-8", errors="replace"))
        expected = listed.get(path.name)
        if expected is not None and expected != sha256:
            message = (
                f"{path} does not match its line in {published} (damaged or tampered): "
                "download or build it again; nothing was added"
            )
            raise ApiError(400, "CHECKSUM_MISMATCH", message)
    return AddedRelease(filename=path.name, sha256=sha256, version=match.group("version"))


def _copy_atomically(source: Path, target: Path) -> None:
    partial = target.with_name(f".{target.name}.partial")
    shutil.copyfile(source, partial)
    os.replace(partial, target)


def _record(sums: Path, added: list[AddedRelease]) -> None:
    record_checksums(sums.parent, {release.filename: release.sha256 for release in added})


_RECORDING = threading.Lock()  # the mirror records from request threads


def record_checksums(releases_dir: Path, digests: dict[str, str]) -> None:
    """Add or replace these files' lines in the directory's ``SHA256SUMS`` (written to a
    temporary name and renamed, so a reader never sees half of it)."""
    sums = releases_dir / CHECKSUMS_FILE
    with _RECORDING:
        lines = parse_sums(sums.read_text(encoding="utf-8")) if sums.is_file() else {}
        lines.update(digests)
        text = "".join(f"{digest}  {name}\n" for name, digest in sorted(lines.items()))
        partial = sums.with_name(f".{sums.name}.partial")
        partial.write_text(text, encoding="utf-8", newline="\n")
        os.replace(partial, sums)
