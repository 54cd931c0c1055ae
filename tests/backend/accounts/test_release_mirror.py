"""``TRAINING_BACKEND_RELEASES_URL``: an archive fetched the first time it is asked for,
checked against that release's ``SHA256SUMS``, kept in the releases directory and served
from there; a tampered, truncated, unlisted or unreachable release is one sentence and
nothing is kept. The upstream is a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.backend.accounts.conftest import Member
from tests.support.release_server import ReleaseServer, release_server
from training_backend.services.release_mirror import RETRY_AFTER_S, ReleaseMirror
from training_backend.settings import BackendSettings

LINUX = "training-agent-0.3.0-linux-amd64.tar.gz"
WINDOWS = "training-agent-0.3.0-windows-amd64.zip"
DOWNLOAD = "/api/workers/download/linux"


def release_archive() -> bytes:
    """A .tar.gz laid out like a release, its executable random bytes (several chunks)."""
    stem = LINUX.removesuffix(".tar.gz")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in (("training-agent", os.urandom(2 * 1024 * 1024 + 77)),):
            info = tarfile.TarInfo(f"{stem}/{name}")
            info.size, info.mode = len(data), 0o755
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


ARCHIVE = release_archive()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sums(**archives: bytes) -> bytes:
    return "".join(f"{sha256(data)}  {name}\n" for name, data in archives.items()).encode()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def upstream() -> Iterator[ReleaseServer]:
    """A release v0.3.0 holding the Linux archive and its SHA256SUMS line."""
    files = {"SHA256SUMS": sums(**{LINUX: ARCHIVE}), LINUX: ARCHIVE, f"{LINUX}.sig": b"c2ln\n"}
    with release_server(files, prefix="/owner/repo/releases/download/v0.3.0") as server:
        yield server


@pytest.fixture
def releases(app: FastAPI, tmp_path: Path, upstream: ReleaseServer, clock: Clock) -> Path:
    """An empty releases directory, agent 0.3.0, and the mirror pointed at ``upstream``
    (``{version}`` in the URL, as for GitHub)."""
    folder = tmp_path / "releases"
    template = upstream.url.replace("v0.3.0", "v{version}")
    settings: BackendSettings = app.state.settings
    app.state.settings = settings.model_copy(
        update={"releases_dir": folder, "agent_version": "0.3.0", "releases_url": template}
    )
    app.state.release_mirror = ReleaseMirror(clock=clock)
    return folder


def archive_requests(upstream: ReleaseServer, name: str = LINUX) -> int:
    return sum(path.endswith(f"/{name}") for path in upstream.requests)


async def test_setup_offers_the_release_before_it_is_fetched_then_the_first_download_keeps_it(
    client: httpx.AsyncClient, member: Member, releases: Path, upstream: ReleaseServer
) -> None:
    setup = await client.get("/api/workers/setup?platform=linux", headers=member.headers())
    body = setup.json()
    assert (body["available"], body["sha256"]) == (True, sha256(ARCHIVE))
    assert f"echo '{sha256(ARCHIVE)}  {LINUX}' | sha256sum -c -" in body["commands"]
    assert archive_requests(upstream) == 0  # the checksum came from SHA256SUMS alone

    first = await client.get(DOWNLOAD)

    assert first.status_code == 200, first.text
    assert first.content == ARCHIVE
    assert first.headers["x-checksum-sha256"] == sha256(ARCHIVE)
    assert (releases / LINUX).read_bytes() == ARCHIVE
    assert (releases / "SHA256SUMS").read_text() == f"{sha256(ARCHIVE)}  {LINUX}\n"
    # the release's signature came along, for the agents to check
    assert (releases / f"{LINUX}.sig").read_bytes() == b"c2ln\n"
    assert sorted(path.name for path in releases.iterdir()) == ["SHA256SUMS", LINUX, f"{LINUX}.sig"]

    upstream.stop()  # from now on it is served from the releases directory
    again = await client.get(DOWNLOAD)
    assert again.content == ARCHIVE and archive_requests(upstream) == 1
    enrolled = await client.get(f"{DOWNLOAD}?enroll=1", headers=member.headers())
    assert enrolled.status_code == 200
    listing = (await client.get("/api/workers/downloads")).json()["artifacts"]
    linux = next(row for row in listing if row["platform"] == "linux")
    assert (linux["available"], linux["size_bytes"]) == (True, len(ARCHIVE))


async def test_a_tampered_archive_is_refused_and_nothing_is_kept(
    client: httpx.AsyncClient, releases: Path, upstream: ReleaseServer, clock: Clock
) -> None:
    tampered = bytearray(ARCHIVE)
    tampered[len(tampered) // 2] ^= 0xFF
    upstream.files[LINUX] = bytes(tampered)

    refused = await client.get(DOWNLOAD)

    assert refused.status_code == 502
    assert refused.json() == {
        "error": f"{upstream.url}/{LINUX} does not match its line in {upstream.url}/SHA256SUMS "
        "(a damaged, truncated or tampered download); nothing was kept: check that release",
        "code": "RELEASE_FETCH_FAILED",
    }
    assert not releases.exists() or list(releases.iterdir()) == []
    # not fetched again at every request: the same sentence until RETRY_AFTER_S passed
    assert (await client.get(DOWNLOAD)).json() == refused.json()
    assert archive_requests(upstream) == 1
    upstream.files[LINUX] = ARCHIVE  # the release is fixed
    clock.now += RETRY_AFTER_S
    assert (await client.get(DOWNLOAD)).content == ARCHIVE


async def test_a_truncated_download_is_refused(
    client: httpx.AsyncClient, releases: Path, upstream: ReleaseServer
) -> None:
    upstream.truncated.add(LINUX)

    refused = await client.get(DOWNLOAD)

    assert refused.status_code == 502
    assert refused.json()["error"].startswith(f"cannot fetch {upstream.url}/{LINUX} (")
    assert not (releases / LINUX).exists()
    assert not list(releases.glob(".*"))  # no half-written file left behind


async def test_a_release_without_sha256sums_or_without_the_archive_says_so(
    client: httpx.AsyncClient, member: Member, releases: Path, upstream: ReleaseServer
) -> None:
    windows = await client.get("/api/workers/download/windows")
    assert windows.status_code == 502
    assert windows.json()["error"] == (
        f"{upstream.url}/SHA256SUMS does not list {WINDOWS}: check "
        "TRAINING_BACKEND_RELEASES_URL and TRAINING_BACKEND_AGENT_VERSION, or add the archive "
        f"with: training-backend releases add {WINDOWS}"
    )
    setup = await client.get("/api/workers/setup?platform=windows", headers=member.headers())
    body = setup.json()
    assert (body["available"], body["commands"]) == (False, None)
    assert body["message"] == windows.json()["error"]
    assert body["operator_commands"].splitlines()[1] == f"training-backend releases add {WINDOWS}"

    del upstream.files["SHA256SUMS"]
    listing = await client.get("/api/workers/downloads")  # cached sums: still listed
    assert listing.status_code == 200


async def test_a_missing_sha256sums_is_named(
    client: httpx.AsyncClient, releases: Path, upstream: ReleaseServer
) -> None:
    del upstream.files["SHA256SUMS"]

    refused = await client.get(DOWNLOAD)

    assert refused.status_code == 502
    assert refused.json()["error"] == (
        f"{upstream.url}/SHA256SUMS answered HTTP 404: check the release"
    )
    assert archive_requests(upstream) == 0


async def test_an_upstream_that_is_down_is_one_sentence_and_the_page_still_renders(
    client: httpx.AsyncClient, member: Member, releases: Path, upstream: ReleaseServer
) -> None:
    upstream.stop()

    refused = await client.get(DOWNLOAD)
    page = await client.get("/workers", headers=member.headers())

    assert refused.status_code == 502
    assert refused.json()["error"].startswith(f"cannot fetch {upstream.url}/SHA256SUMS (Connect")
    assert page.status_code == 200
    assert "cannot fetch" in page.text


async def test_a_releases_directory_it_cannot_write_is_named(
    app: FastAPI, client: httpx.AsyncClient, releases: Path, tmp_path: Path
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    settings: BackendSettings = app.state.settings
    app.state.settings = settings.model_copy(update={"releases_dir": blocked / "releases"})

    refused = await client.get(DOWNLOAD)

    assert refused.status_code == 502
    assert refused.json()["error"] == (
        f"cannot store {LINUX} in {blocked / 'releases'} (Not a directory): free some space "
        "or fix its permissions"
    )
