"""Agent downloads: allow-listed names, checksums, 400/404 answers, and setup commands."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from tests.backend.accounts.conftest import Member
from training_backend.settings import BackendSettings, version_tuple

DOWNLOAD = "/api/workers/download"
SETUP = "/api/workers/setup"
MAC_UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7_1) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15"
)


@pytest.fixture
def releases(app: FastAPI, tmp_path: Path) -> Path:
    """An empty releases directory the app serves from (agent version 0.2.0)."""
    folder = tmp_path / "releases"
    folder.mkdir()
    settings: BackendSettings = app.state.settings
    app.state.settings = settings.model_copy(
        update={"releases_dir": folder, "agent_version": "0.2.0"}
    )
    return folder


def put(releases: Path, name: str, content: bytes) -> str:
    (releases / name).write_bytes(content)
    return hashlib.sha256(content).hexdigest()


@pytest.mark.parametrize(
    ("platform", "filename", "media_type"),
    [
        ("linux", "training-agent-0.2.0-linux-amd64.tar.gz", "application/gzip"),
        ("darwin", "training-agent-0.2.0-darwin-arm64.tar.gz", "application/gzip"),
        ("windows", "training-agent-0.2.0-windows-amd64.zip", "application/zip"),
    ],
)
async def test_each_platform_streams_its_archive_with_checksum_and_length(
    client: httpx.AsyncClient, releases: Path, platform: str, filename: str, media_type: str
) -> None:
    content = f"archive for {platform}".encode() * 1000
    sha256 = put(releases, filename, content)

    response = await client.get(f"{DOWNLOAD}/{platform}")

    assert response.status_code == 200
    assert response.content == content
    assert response.headers["content-length"] == str(len(content))
    assert response.headers["content-type"] == media_type
    assert response.headers["content-disposition"] == f'attachment; filename="{filename}"'
    assert response.headers["x-checksum-sha256"] == sha256


async def test_the_arch_query_picks_the_build(client: httpx.AsyncClient, releases: Path) -> None:
    put(releases, "training-agent-0.2.0-linux-arm64.tar.gz", b"arm")
    put(releases, "training-agent-0.2.0-darwin-amd64.tar.gz", b"intel mac")

    assert (await client.get(f"{DOWNLOAD}/linux?arch=arm64")).content == b"arm"
    assert (await client.get(f"{DOWNLOAD}/darwin?arch=amd64")).content == b"intel mac"
    bad = await client.get(f"{DOWNLOAD}/linux?arch=../../x")
    assert (bad.status_code, bad.json()["code"]) == (400, "INVALID_ARCH")
    assert bad.json()["error"].endswith("Must be one of: amd64, arm64")


async def test_sha256sums_is_preferred_to_computing(
    client: httpx.AsyncClient, releases: Path
) -> None:
    name = "training-agent-0.2.0-linux-amd64.tar.gz"
    put(releases, name, b"archive")
    listed = "ab" * 32
    (releases / "SHA256SUMS").write_text(f"{'cd' * 32}  other.tar.gz\n{listed} *{name}\n")

    response = await client.get(f"{DOWNLOAD}/linux")

    assert response.headers["x-checksum-sha256"] == listed


async def test_a_computed_checksum_follows_a_changed_file(
    client: httpx.AsyncClient, releases: Path
) -> None:
    name = "training-agent-0.2.0-windows-amd64.zip"
    first = put(releases, name, b"first build")
    assert (await client.get(f"{DOWNLOAD}/windows")).headers["x-checksum-sha256"] == first

    second = put(releases, name, b"the second build")
    os.utime(releases / name, ns=(1, 1))  # a new mtime as well as a new size

    assert (await client.get(f"{DOWNLOAD}/windows")).headers["x-checksum-sha256"] == second


async def test_a_missing_archive_is_404_saying_what_to_add(
    client: httpx.AsyncClient, releases: Path
) -> None:
    response = await client.get(f"{DOWNLOAD}/linux")
    assert response.status_code == 404
    assert response.json() == {
        "error": "The training agent 0.2.0 for Linux (amd64) is not on this server yet; its "
        "administrator adds it with: training-backend releases add "
        "training-agent-0.2.0-linux-amd64.tar.gz (or sets TRAINING_BACKEND_RELEASES_URL "
        "to fetch releases)",
        "code": "ARTIFACT_NOT_FOUND",
    }


@pytest.mark.parametrize(
    "platform",
    ["macos", "Linux", "win", "linux.tar.gz", "%2e%2e", "..%2F..%2Fetc%2Fpasswd", "x" * 300],
)
async def test_other_platforms_are_400_listing_the_valid_ones(
    client: httpx.AsyncClient, releases: Path, platform: str
) -> None:
    put(releases, "training-agent-0.2.0-linux-amd64.tar.gz", b"archive")
    response = await client.get(f"{DOWNLOAD}/{platform}")
    assert response.status_code in (400, 404)
    assert set(response.json()) == {"error", "code"}
    if response.status_code == 400:
        assert response.json()["code"] == "INVALID_PLATFORM"
        assert response.json()["error"].endswith("Must be one of: linux, darwin, windows")


async def test_no_request_path_reads_another_file(
    client: httpx.AsyncClient, releases: Path
) -> None:
    secret = releases.parent / "secret.txt"
    secret.write_text("do not serve")
    for path in ["/../secret.txt", "/..%2Fsecret.txt", "/linux/../../secret.txt"]:
        response = await client.get(f"{DOWNLOAD}{path}")
        assert b"do not serve" not in response.content
        assert response.status_code in (400, 404)


def test_the_agent_version_and_releases_dir_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert version_tuple(BackendSettings().agent_version) >= (0, 2, 0)
    monkeypatch.setenv("TRAINING_BACKEND_AGENT_VERSION", "0.3.1")
    monkeypatch.setenv("TRAINING_BACKEND_RELEASES_DIR", str(tmp_path))
    settings = BackendSettings()
    assert (settings.agent_version, settings.releases_dir) == ("0.3.1", tmp_path)


@pytest.mark.parametrize("version", ["0.1.9", "0.0.1", "../0.2.0", "0.2.0/x", "latest", "0.2"])
def test_unsafe_or_too_old_versions_are_refused(version: str) -> None:
    with pytest.raises(ValidationError):
        BackendSettings(agent_version=version)


async def test_setup_gives_url_checksum_and_sh_commands(
    client: httpx.AsyncClient, releases: Path, member: Member
) -> None:
    sha256 = put(releases, "training-agent-0.2.0-linux-amd64.tar.gz", b"archive")

    response = await client.get(f"{SETUP}?platform=linux", headers=member.headers())

    assert response.status_code == 200
    body = response.json()
    url = "http://backend.test/api/workers/download/linux?arch=amd64"
    assert (body["download_url"], body["sha256"], body["version"]) == (url, sha256, "0.2.0")
    assert (body["shell"], body["available"], body["backend_url"]) == (
        "sh",
        True,
        "http://backend.test",
    )
    commands = body["commands"]
    assert commands.startswith(" curl ")
    assert f"echo '{sha256}  training-agent-0.2.0-linux-amd64.tar.gz' | sha256sum -c -" in commands
    assert "API_KEY='<API_KEY>' BACKEND_URL='http://backend.test'" in commands
    assert body["api_key_placeholder"] == "<API_KEY>"


async def test_setup_uses_the_public_url_and_powershell_for_windows(
    client: httpx.AsyncClient, app: FastAPI, releases: Path, member: Member
) -> None:
    settings: BackendSettings = app.state.settings
    app.state.settings = settings.model_copy(update={"public_url": "https://train.example.com"})
    sha256 = put(releases, "training-agent-0.2.0-windows-amd64.zip", b"zip")

    body = (await client.get(f"{SETUP}?platform=windows", headers=member.headers())).json()

    assert body["shell"] == "powershell"
    assert body["download_url"].startswith("https://train.example.com/api/workers/download/")
    commands = body["commands"]
    assert "$env:API_KEY = '<API_KEY>'; $env:BACKEND_URL = 'https://train.example.com'" in commands
    assert f"-ne '{sha256}'" in commands
    assert "Expand-Archive" in commands


async def test_setup_detects_macos_from_the_user_agent(
    client: httpx.AsyncClient, releases: Path, member: Member
) -> None:
    put(releases, "training-agent-0.2.0-darwin-arm64.tar.gz", b"mac")
    body = (await client.get(SETUP, headers=member.headers(**{"User-Agent": MAC_UA}))).json()
    assert (body["platform"], body["display_name"]) == ("darwin", "macOS")
    assert "shasum -a 256 -c -" in body["commands"]


async def test_setup_without_a_platform_or_a_known_user_agent_is_400(
    client: httpx.AsyncClient, releases: Path, member: Member
) -> None:
    response = await client.get(SETUP, headers=member.headers(**{"User-Agent": "curl/8"}))
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_PLATFORM"


async def test_setup_says_when_the_archive_is_missing(
    client: httpx.AsyncClient, releases: Path, member: Member
) -> None:
    body = (await client.get(f"{SETUP}?platform=linux", headers=member.headers())).json()
    assert (body["available"], body["sha256"], body["commands"]) == (False, None, None)
    assert "not on this server yet" in body["message"]
    # what the page shows in the command box instead: the administrator's exact commands
    operator = body["operator_commands"].splitlines()
    assert "training-backend releases add training-agent-0.2.0-linux-amd64.tar.gz" in operator
    assert any(line.startswith("export TRAINING_BACKEND_RELEASES_URL=") for line in operator)


async def test_setup_needs_a_session(client: httpx.AsyncClient, releases: Path) -> None:
    response = await client.get(f"{SETUP}?platform=linux")
    assert response.status_code == 401


async def test_downloads_lists_every_platform(client: httpx.AsyncClient, releases: Path) -> None:
    sha256 = put(releases, "training-agent-0.2.0-linux-amd64.tar.gz", b"archive")
    body = (await client.get("/api/workers/downloads", headers={"User-Agent": MAC_UA})).json()
    assert body["version"] == "0.2.0" and body["detected_platform"] == "darwin"
    available = {row["platform"]: (row["available"], row["sha256"]) for row in body["artifacts"]}
    assert available == {
        "linux": (True, sha256),
        "darwin": (False, None),
        "windows": (False, None),
    }
