"""``min_agent_version``: older agents get 426 with the download URL on poll and claim,
before anything is recorded or claimed; newer ones work as before."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.backend.support import Caller, reload
from training_backend.db.models import TrainingAgent, TrainingJob
from training_backend.services.agent_versions import is_supported
from training_backend.settings import BackendSettings

POLL = "/api/training/agent/poll"


@pytest.fixture
def minimum(app: FastAPI) -> str:
    settings: BackendSettings = app.state.settings
    app.state.settings = settings.model_copy(update={"min_agent_version": "0.3.0"})
    return "0.3.0"


def agent(caller: Caller, version: str | None, platform: str = "linux") -> dict[str, str]:
    extra = {"X-Agent-Platform": platform}
    if version is not None:
        extra["X-Agent-Version"] = version
    return caller.headers(**extra)


@pytest.mark.parametrize(
    ("version", "shown"),
    [("0.2.9", "training-agent 0.2.9"), (None, "a training-agent of unknown version")],
)
async def test_an_older_agent_polls_426_with_the_download_url_and_is_not_recorded(
    client: httpx.AsyncClient,
    caller: Caller,
    db: Session,
    minimum: str,
    version: str | None,
    shown: str,
) -> None:
    response = await client.get(POLL, headers=agent(caller, version))

    assert response.status_code == 426
    assert response.json() == {
        "error": f"{shown} is older than 0.3.0, the oldest version this platform accepts",
        "code": "AGENT_UPGRADE_REQUIRED",
        "min_version": "0.3.0",
        "download_url": "http://backend.test/api/workers/download/linux",
    }
    assert db.scalars(select(TrainingAgent)).all() == []


async def test_an_older_agent_cannot_claim(
    client: httpx.AsyncClient,
    caller: Caller,
    db: Session,
    make_job: Callable[..., TrainingJob],
    minimum: str,
) -> None:
    job = make_job()
    response = await client.post(
        f"/api/training/agent/claim/{job.id}", headers=agent(caller, "0.1.0", "windows")
    )

    assert response.status_code == 426
    assert response.json()["download_url"].endswith("/api/workers/download/windows")
    assert reload(db, job).status == "pending"


@pytest.mark.parametrize("version", ["0.3.0", "0.3.0rc1", "1.0.0"])
async def test_current_agents_poll_and_claim_as_before(
    client: httpx.AsyncClient,
    caller: Caller,
    make_job: Callable[..., TrainingJob],
    minimum: str,
    version: str,
) -> None:
    job = make_job()
    poll = await client.get(POLL, headers=agent(caller, version))
    claim = await client.post(f"/api/training/agent/claim/{job.id}", headers=agent(caller, version))
    assert (poll.status_code, claim.status_code) == (200, 200)


async def test_without_a_minimum_every_agent_is_served(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    response = await client.get(POLL, headers=agent(caller, "0.0.1"))
    assert response.status_code == 200


async def test_the_key_is_checked_before_the_version(
    client: httpx.AsyncClient, minimum: str
) -> None:
    response = await client.get(POLL, headers={"X-Agent-Version": "0.0.1"})
    assert response.status_code == 401


def test_versions_compare_on_major_minor_patch() -> None:
    assert is_supported("0.10.0", "0.9.9")
    assert not is_supported("0.9.10", "0.10.0")
    assert not is_supported("dev", "0.1.0")
    assert is_supported("anything", None)


def test_the_minimum_comes_from_the_environment_and_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRAINING_BACKEND_MIN_AGENT_VERSION", "0.4.1")
    assert BackendSettings().min_agent_version == "0.4.1"
    with pytest.raises(ValidationError):
        BackendSettings(min_agent_version="latest")
