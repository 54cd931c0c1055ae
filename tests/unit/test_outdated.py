"""426 from the backend (it needs a newer agent): one sentence with the download URL, and
the agent stops polling, finishes its job and leaves the decision to ``start`` (exit 5)."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from tests.support.executor import command_job
from tests.support.fake_backend import FakeBackend, job
from tests.unit.test_daemon import VirtualTime, offer, run, statuses, wired_agent
from tests.unit.test_poller import POLL, poller_with
from training_agent import cli
from training_agent.api import BackendClient
from training_agent.errors import AgentOutdatedError
from training_agent.paths import AgentPaths
from training_agent.poller import Connection
from training_agent.status.state import AgentState

URL = "https://app.example.com/api/workers/download/linux"
TOO_OLD = httpx.Response(
    426,
    json={
        "error": (
            "training-agent 0.1.0 is older than 0.3.0, the oldest version this platform accepts"
        ),
        "code": "AGENT_UPGRADE_REQUIRED",
        "min_version": "0.3.0",
        "download_url": URL,
    },
)


async def test_a_426_is_one_sentence_naming_the_download_url(
    backend: FakeBackend, client: BackendClient
) -> None:
    backend.on(POLL, TOO_OLD)

    with pytest.raises(AgentOutdatedError) as raised:
        await client.poll()

    message = str(raised.value)
    assert raised.value.download_url == URL and raised.value.status == 426
    assert f"download the new version from {URL}" in message
    assert "(training-agent 0.1.0 is older than 0.3.0, the oldest version" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "body", [{}, {"error": "upgrade", "download_url": "javascript:alert(1)"}, "not json"]
)
async def test_a_426_without_a_usable_url_points_at_the_page(
    backend: FakeBackend, client: BackendClient, body: object
) -> None:
    answer = httpx.Response(426, json=body) if isinstance(body, dict) else httpx.Response(426)
    backend.on(POLL, answer)

    with pytest.raises(AgentOutdatedError) as raised:
        await client.poll()

    assert raised.value.download_url is None
    assert "from the platform's Training Agent page" in str(raised.value)


@pytest.mark.parametrize("route", [POLL, "POST /api/training/agent/claim/job-1"])
async def test_the_poller_stops_for_good_and_says_it_once(
    backend: FakeBackend, route: str, caplog: pytest.LogCaptureFixture
) -> None:
    backend.on(POLL, httpx.Response(200, json={"job": job()}))
    backend.on(route, TOO_OLD)
    state = AgentState(agent_id="agent_0123456789abcdef", version="1", backend_url="x")
    poller = poller_with(backend, state=state)

    claimed = [j async for j in poller.jobs(can_claim=lambda: True)]

    assert claimed == []
    assert poller.connection is Connection.OUTDATED and poller.outdated is not None
    assert state.connection.state == "outdated"
    assert len(backend.calls(POLL)) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert [m for m in errors if URL in m] == [str(poller.outdated)]


async def test_the_daemon_finishes_its_job_then_raises_the_426(
    tmp_path: Path, backend: FakeBackend
) -> None:
    offers = offer(backend, "job-1", config=command_job("print-lines", "3"))
    backend.on(POLL, offers, TOO_OLD)
    agent = wired_agent(AgentPaths.under(tmp_path), backend, VirtualTime())

    with pytest.raises(AgentOutdatedError):
        try:
            await run(agent.daemon)
        finally:
            await agent.aclose()

    assert statuses(backend, "job-1")[-1]["status"] == "completed"
    assert len(backend.calls(POLL)) == 2  # nothing after the 426


def test_start_exits_5_with_the_sentence(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    error = AgentOutdatedError("download the new version from " + URL, download_url=URL)

    async def refused(*_args: object) -> int:
        raise error

    monkeypatch.setattr("training_agent.agent.run_agent", refused)
    monkeypatch.setenv("BACKEND_URL", "https://app.example.com")

    assert cli.main(["start"]) == 5
    assert capsys.readouterr().err == f"training-agent: {error}\n"
