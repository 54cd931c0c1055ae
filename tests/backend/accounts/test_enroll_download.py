"""Downloads with enrollment: the release archive plus ``training-agent.enroll.json``,
built as it is sent, the executable inside unchanged (its SHA-256 is the published one)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.backend.accounts.conftest import Member
from training_backend.db.models import EnrollmentToken
from training_backend.services.tar_append import ExtraFile, TarGzAppender
from training_backend.settings import BackendSettings

DOWNLOAD = "/api/workers/download"
STEM = {
    "linux": "training-agent-0.2.0-linux-amd64",
    "windows": "training-agent-0.2.0-windows-amd64",
}
EXECUTABLE = {"linux": "training-agent", "windows": "training-agent.exe"}
# Random bytes do not compress: several chunks of the stream, like a real executable.
BINARY = os.urandom(3 * 1024 * 1024 + 123)
INSTALL_SH = b"#!/bin/sh\necho installing\n"
#: A one-folder build's ``_internal``, with a file named like the executable deeper down
#: (the enrollment file must still go beside the top-level one).
LIBRARY = b"\x7fELF library"
DECOY = b"not the executable"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fake_tar_gz(path: Path, stem: str) -> None:
    with tarfile.open(path, "w:gz") as archive:
        for name in (stem, f"{stem}/_internal", f"{stem}/_internal/bin"):
            folder = tarfile.TarInfo(name)
            folder.type, folder.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(folder)
        for name, data, mode in (
            (EXECUTABLE["linux"], BINARY, 0o755),
            ("install.sh", INSTALL_SH, 0o755),
            ("_internal/libpython3.11.so.1.0", LIBRARY, 0o755),
            ("_internal/bin/training-agent", DECOY, 0o755),
        ):
            info = tarfile.TarInfo(f"{stem}/{name}")
            info.size, info.mode, info.mtime = len(data), mode, 1_700_000_000
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo(f"{stem}/_internal/libpython.so")
        link.type, link.linkname = tarfile.SYMTYPE, "libpython3.11.so.1.0"
        archive.addfile(link)


def fake_zip(path: Path, stem: str) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{stem}/_internal/tools/training-agent.exe", DECOY)
        archive.writestr(f"{stem}/_internal/python311.dll", LIBRARY)
        archive.writestr(f"{stem}/{EXECUTABLE['windows']}", BINARY)
        archive.writestr(f"{stem}/install.ps1", b"Write-Host installing\r\n")
        archive.comment = b"release 0.2.0"


@pytest.fixture
def releases(app: FastAPI, tmp_path: Path) -> Path:
    """A releases directory with a Linux and a Windows build and their SHA256SUMS, the
    executables listed too (as ``sha256sum`` prints paths inside the unpacked folder)."""
    folder = tmp_path / "releases"
    folder.mkdir()
    fake_tar_gz(folder / f"{STEM['linux']}.tar.gz", STEM["linux"])
    fake_zip(folder / f"{STEM['windows']}.zip", STEM["windows"])
    lines = [f"{sha256(p.read_bytes())}  {p.name}" for p in sorted(folder.iterdir())]
    lines += [f"{sha256(BINARY)}  {STEM[p]}/{EXECUTABLE[p]}" for p in ("linux", "windows")]
    (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    settings: BackendSettings = app.state.settings
    app.state.settings = settings.model_copy(
        update={"releases_dir": folder, "agent_version": "0.2.0"}
    )
    return folder


def published(releases: Path, name: str) -> str:
    for line in (releases / "SHA256SUMS").read_text().splitlines():
        digest, listed = line.split("  ", 1)
        if listed == name:
            return digest
    raise AssertionError(f"{name} is not in SHA256SUMS")


def tar_members(content: bytes) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    found = {}
    with tarfile.open(fileobj=io.BytesIO(content), mode="r:gz") as archive:
        for member in archive.getmembers():
            data = archive.extractfile(member) if member.isreg() else None
            found[member.name] = (member, data.read() if data else b"")
    return found


async def check_token_works(client: httpx.AsyncClient, enroll: dict[str, Any]) -> None:
    body = {"token": enroll["enrollment_token"], "agent_id": "agent_download0001"}
    answer = await client.post("/api/training/agent/enroll", json=body)
    assert answer.status_code == 201, answer.text


async def test_the_tar_gz_gets_the_enrollment_file_beside_the_unchanged_executable(
    client: httpx.AsyncClient, member: Member, releases: Path
) -> None:
    response = await client.get(f"{DOWNLOAD}/linux?enroll=1", headers=member.headers())

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/gzip"
    assert response.headers["cache-control"] == "no-store"
    assert STEM["linux"] in response.headers["content-disposition"]
    assert "x-checksum-sha256" not in response.headers  # not the published archive
    members = tar_members(response.content)
    stem = STEM["linux"]
    assert list(members) == [
        stem,
        f"{stem}/_internal",
        f"{stem}/_internal/bin",
        f"{stem}/training-agent",
        f"{stem}/install.sh",
        f"{stem}/_internal/libpython3.11.so.1.0",
        f"{stem}/_internal/bin/training-agent",
        f"{stem}/_internal/libpython.so",
        f"{stem}/training-agent.enroll.json",
    ]
    assert members[f"{stem}/_internal/libpython.so"][0].linkname == "libpython3.11.so.1.0"
    assert members[f"{stem}/_internal/libpython3.11.so.1.0"][1] == LIBRARY
    executable, data = members[f"{stem}/training-agent"]
    assert sha256(data) == published(releases, f"{stem}/training-agent")
    assert (executable.mode, executable.mtime) == (0o755, 1_700_000_000)
    assert members[f"{stem}/install.sh"][1] == INSTALL_SH
    info, raw = members[f"{stem}/training-agent.enroll.json"]
    assert info.mode == 0o600
    enroll = json.loads(raw)
    assert set(enroll) == {"backend_url", "enrollment_token", "expires_at"}
    assert enroll["backend_url"] == "http://backend.test"
    assert enroll["enrollment_token"].startswith("wae_")
    await check_token_works(client, enroll)


async def test_the_zip_keeps_every_original_byte_and_adds_the_file(
    client: httpx.AsyncClient, member: Member, releases: Path
) -> None:
    original = (releases / f"{STEM['windows']}.zip").read_bytes()

    response = await client.get(f"{DOWNLOAD}/windows?enroll=1", headers=member.headers())

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-length"] == str(len(response.content))
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.testzip() is None
        stem = STEM["windows"]
        assert archive.namelist() == [
            f"{stem}/_internal/tools/training-agent.exe",
            f"{stem}/_internal/python311.dll",
            f"{stem}/training-agent.exe",
            f"{stem}/install.ps1",
            f"{stem}/training-agent.enroll.json",
        ]
        data = archive.read(f"{stem}/training-agent.exe")
        enroll = json.loads(archive.read(f"{stem}/training-agent.enroll.json"))
        mode = archive.getinfo(f"{stem}/training-agent.enroll.json").external_attr >> 16
        assert archive.comment == b"release 0.2.0"
    assert sha256(data) == published(releases, f"{stem}/training-agent.exe")
    assert mode == 0o100600
    # everything before the index (the central directory) is the release's own bytes,
    # the executable's compressed data included
    index = original.index(b"PK\x01\x02")
    assert response.content[:index] == original[:index]
    await check_token_works(client, enroll)


async def test_the_plain_download_is_the_published_archive(
    client: httpx.AsyncClient, releases: Path
) -> None:
    response = await client.get(f"{DOWNLOAD}/linux")
    assert response.content == (releases / f"{STEM['linux']}.tar.gz").read_bytes()
    assert response.headers["x-checksum-sha256"] == published(releases, f"{STEM['linux']}.tar.gz")


def tokens(db: Session) -> int:
    db.expire_all()
    return int(db.scalar(select(func.count()).select_from(EnrollmentToken)) or 0)


async def test_without_a_session_no_archive_and_no_token(
    client: httpx.AsyncClient, releases: Path, db: Session
) -> None:
    response = await client.get(f"{DOWNLOAD}/linux?enroll=1")
    assert (response.status_code, response.json()["code"]) == (401, "UNAUTHENTICATED")
    assert tokens(db) == 0


async def test_a_missing_or_damaged_archive_makes_no_token(
    client: httpx.AsyncClient, member: Member, releases: Path, db: Session
) -> None:
    missing = await client.get(f"{DOWNLOAD}/darwin?enroll=1", headers=member.headers())
    assert (missing.status_code, missing.json()["code"]) == (404, "ARTIFACT_NOT_FOUND")
    (releases / f"{STEM['linux']}.tar.gz").write_bytes(b"not a gzip file at all")
    (releases / f"{STEM['windows']}.zip").write_bytes(b"PK\x03\x04 broken")
    for platform in ("linux", "windows"):
        damaged = await client.get(f"{DOWNLOAD}/{platform}?enroll=1", headers=member.headers())
        assert (damaged.status_code, damaged.json()["code"]) == (500, "ARTIFACT_UNREADABLE")
        assert "ask its administrator" in damaged.json()["error"]
    assert tokens(db) == 0


def test_the_tar_gz_is_sent_in_chunks_not_built_whole(tmp_path: Path) -> None:
    path = tmp_path / "a.tar.gz"
    fake_tar_gz(path, "stem")
    extra = ExtraFile("extra.json", b"{}", 0o600, 0)

    chunks = list(TarGzAppender(path, beside="training-agent", folder="x").stream(extra))

    assert len(chunks) > 3 and max(len(chunk) for chunk in chunks) <= 2 * 1024 * 1024
    members = tar_members(b"".join(chunks))
    assert members["stem/extra.json"][1] == b"{}"
