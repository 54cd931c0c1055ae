"""``agent_update`` in poll answers: an agent of another version than
``TRAINING_BACKEND_AGENT_VERSION`` is offered the archives this backend can serve for
its platform, each with its SHA-256 and signature; a current agent, an unknown platform,
a refused downgrade or a missing archive get nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.backend.support import Caller
from training_backend.services.agent_updates import OFFER_TTL_S, UpdateOffers
from training_backend.settings import BackendSettings

POLL = "/api/training/agent/poll"
LINUX_AMD64 = "training-agent-0.3.0-linux-amd64.tar.gz"
LINUX_ARM64 = "training-agent-0.3.0-linux-arm64.tar.gz"


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(app: FastAPI) -> Clock:
    clock = Clock()
    app.state.update_offers = UpdateOffers(app.state.release_mirror, clock=clock)
    return clock


@pytest.fixture
def releases(app: FastAPI, tmp_path: Path, clock: Clock) -> Path:
    """Release 0.3.0 for Linux amd64 (signed) and arm64 (unsigned), agent version 0.3.0."""
    folder = tmp_path / "releases"
    folder.mkdir()
    (folder / LINUX_AMD64).write_bytes(b"amd64 build")
    (folder / f"{LINUX_AMD64}.sig").write_text("c2lnbmVk\n")
    (folder / LINUX_ARM64).write_bytes(b"arm64 build")
    settings: BackendSettings = app.state.settings
    app.state.settings = settings.model_copy(
        update={"releases_dir": folder, "agent_version": "0.3.0"}
    )
    return folder


def agent(caller: Caller, version: str, platform: str = "linux") -> dict[str, str]:
    return caller.headers(**{"X-Agent-Version": version, "X-Agent-Platform": platform})


async def test_an_older_agent_is_offered_each_build_of_its_platform(
    client: httpx.AsyncClient, caller: Caller, releases: Path
) -> None:
    body = (await client.get(POLL, headers=agent(caller, "0.2.0"))).json()

    assert "agent_update" in body["features"]
    assert body["agent_update"] == {
        "version": "0.3.0",
        "downgrade": False,
        "archives": [
            {
                "arch": "amd64",
                "filename": LINUX_AMD64,
                "url": "http://backend.test/api/workers/download/linux?arch=amd64",
                "sha256": hashlib.sha256(b"amd64 build").hexdigest(),
                "signature": "c2lnbmVk",
            },
            {
                "arch": "arm64",
                "filename": LINUX_ARM64,
                "url": "http://backend.test/api/workers/download/linux?arch=arm64",
                "sha256": hashlib.sha256(b"arm64 build").hexdigest(),
                "signature": None,
            },
        ],
    }


@pytest.mark.parametrize(
    ("version", "platform"),
    [("0.3.0", "linux"), ("0.2.0", "windows"), ("0.2.0", "plan9"), ("0.4.0", "linux")],
)
async def test_current_unknown_unserved_or_newer_agents_get_no_offer(
    client: httpx.AsyncClient, caller: Caller, releases: Path, version: str, platform: str
) -> None:
    body = (await client.get(POLL, headers=agent(caller, version, platform))).json()
    assert "agent_update" not in body


async def test_a_downgrade_is_offered_only_when_allowed_and_says_so(
    app: FastAPI, client: httpx.AsyncClient, caller: Caller, releases: Path
) -> None:
    settings: BackendSettings = app.state.settings
    app.state.settings = settings.model_copy(update={"allow_agent_downgrade": True})

    body = (await client.get(POLL, headers=agent(caller, "0.4.0"))).json()

    assert body["agent_update"]["version"] == "0.3.0"
    assert body["agent_update"]["downgrade"] is True


async def test_offers_are_cached_for_a_while(
    client: httpx.AsyncClient, caller: Caller, releases: Path, clock: Clock
) -> None:
    (releases / LINUX_ARM64).unlink()
    first = (await client.get(POLL, headers=agent(caller, "0.2.0"))).json()
    (releases / LINUX_AMD64).unlink()

    cached = (await client.get(POLL, headers=agent(caller, "0.2.0"))).json()
    clock.now += OFFER_TTL_S
    later = (await client.get(POLL, headers=agent(caller, "0.2.0"))).json()

    assert [a["arch"] for a in first["agent_update"]["archives"]] == ["amd64"]
    assert cached["agent_update"] == first["agent_update"]
    assert "agent_update" not in later  # nothing left to offer
