"""Each long-lived part of the daemon survives an unexpected error in itself: the
uploader, the poll loop, the heartbeats and the resource sampler are logged with their
traceback and go on, and the job still runs and is delivered (issue 16)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

import training_agent.agent as agent_module
from tests.support.executor import command_job
from tests.support.fake_backend import API_KEY, IDENTITY, FakeBackend
from tests.unit.test_daemon import POLL, VirtualTime, offer, run, statuses, wired_agent
from training_agent.agent import EXIT_CRASHED, Agent, run_agent
from training_agent.config import Settings
from training_agent.control import JobControl
from training_agent.daemon import EXIT_OK, SAMPLER
from training_agent.jobs import JobStatus
from training_agent.paths import AgentPaths
from training_agent.reporting.outbox import Outbox
from training_agent.resources import ResourceMonitor

HEARTBEAT = "POST /api/training/local/job-1/heartbeat"


@pytest.fixture
async def agent(tmp_path: Path, backend: FakeBackend) -> AsyncIterator[Agent]:
    built = wired_agent(AgentPaths.under(tmp_path / "agent"), backend, VirtualTime(), max_jobs=1)
    yield built
    await built.aclose()


def fail_first(real: Callable[..., Any], count: int = 1) -> Callable[..., Any]:
    """``real``, except that its first ``count`` calls raise a bug."""
    calls = [0]

    def maybe_fail(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] <= count:
            raise ZeroDivisionError(f"a bug, call {calls[0]}")
        return real(*args, **kwargs)

    return maybe_fail


def tracebacks(caplog: pytest.LogCaptureFixture, what: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if what in r.getMessage() and r.exc_info is not None]


async def test_the_uploader_dies_and_is_restarted(
    agent: Agent,
    backend: FakeBackend,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    offer(backend, "job-1", config=command_job("print-lines", "3"))
    uploader = agent.daemon.uploader
    real = uploader.drain_once

    async def drain_once() -> bool:
        if not tracebacks(caplog, "the uploader failed unexpectedly"):
            raise ZeroDivisionError("a bug in the uploader")
        return await real()

    monkeypatch.setattr(uploader, "drain_once", drain_once)

    assert await run(agent.daemon) == EXIT_OK

    assert len(tracebacks(caplog, "the uploader failed unexpectedly")) == 1
    assert statuses(backend, "job-1")[-1]["status"] == "completed"


async def test_the_poll_loop_dies_and_is_restarted(
    agent: Agent,
    backend: FakeBackend,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    offer(backend, "job-1", config=command_job("print-lines", "3"))
    poller = agent.daemon.poller
    real = poller.step

    async def step(*, can_claim: bool) -> Any:
        if not tracebacks(caplog, "the poll loop failed unexpectedly"):
            raise ZeroDivisionError("a bug in the poll loop")
        return await real(can_claim=can_claim)

    monkeypatch.setattr(poller, "step", step)

    assert await run(agent.daemon) == EXIT_OK

    assert len(tracebacks(caplog, "the poll loop failed unexpectedly")) == 1
    assert statuses(backend, "job-1")[-1]["status"] == "completed"
    assert "the poll loop" not in agent.state.problems  # it ended well


async def test_a_failing_resource_sampler_costs_only_the_info_header(
    agent: Agent,
    backend: FakeBackend,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    offer(backend, "job-1", config=command_job("print-lines", "3"))
    monkeypatch.setattr(ResourceMonitor, "info_header", fail_first(ResourceMonitor.info_header, 2))

    assert await run(agent.daemon) == EXIT_OK

    polls = [r for r in backend.requests if r.url.path.endswith("/poll")]
    assert "X-Agent-Info" not in polls[0].headers
    assert "X-Agent-Info" in polls[-1].headers
    assert len(tracebacks(caplog, "cannot sample this machine's resources")) == 1
    assert SAMPLER not in agent.state.problems  # it works again
    assert statuses(backend, "job-1")[-1]["status"] == "completed"


async def test_the_heartbeat_dies_and_is_restarted(
    agent: Agent,
    backend: FakeBackend,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    offer(backend, "job-1", config=command_job("graceful-sigterm"))
    backend.on(
        HEARTBEAT,
        httpx.Response(200, json={"control": None}),
        httpx.Response(200, json={"control": "cancel"}),
    )
    monkeypatch.setattr(JobControl, "check_once", fail_first_async(JobControl.check_once))

    assert await run(agent.daemon) == EXIT_OK

    assert len(tracebacks(caplog, "the heartbeat of job job-1 failed unexpectedly")) == 1
    assert len(backend.calls(HEARTBEAT)) >= 2  # the heartbeats went on after the crash
    assert statuses(backend, "job-1")[-1]["status"] == "cancelled"


def fail_first_async(real: Callable[..., Any]) -> Callable[..., Any]:
    calls = [0]

    async def maybe_fail(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            raise ZeroDivisionError("a bug in the heartbeat")
        return await real(*args, **kwargs)

    return maybe_fail


async def test_an_unexpected_error_ends_the_agent_with_code_1_and_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Crashing:
        identity = IDENTITY

        async def run(self) -> int:
            raise ZeroDivisionError("a bug outside every supervised task")

    monkeypatch.setattr(agent_module, "setup_logging", lambda *args, **kwargs: None)
    monkeypatch.setattr(agent_module, "build_agent", lambda *args, **kwargs: Crashing())
    settings = Settings(backend_url="http://backend.test", api_key=SecretStr(API_KEY))

    assert await run_agent(settings, AgentPaths.under(tmp_path / "agent")) == EXIT_CRASHED

    crash = [
        r for r in caplog.records if "the agent stopped on an unexpected error" in r.getMessage()
    ]
    assert len(crash) == 1 and crash[0].exc_info is not None


async def test_a_stop_before_any_poll_answered_still_delivers_the_outbox(
    tmp_path: Path, backend: FakeBackend
) -> None:
    # --idle-exit on a slow start (or a stop signal) used to stop the poller before it
    # learnt the backend's extensions, and the outbox waited in vain for them.
    paths = AgentPaths.under(tmp_path / "agent")
    paths.ensure()
    outbox = Outbox(paths.outbox_file)
    outbox.open_job("old", "tok-old")
    outbox.append_status("old", JobStatus.FAILED, error="agent restarted during the job")
    outbox.close()

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    backend.on(POLL, down, offer(backend, config={}))  # the first poll is not answered
    built = wired_agent(paths, backend, VirtualTime(), idle_exit_seconds=0.001)
    try:
        assert await run(built.daemon, timeout_s=20) == EXIT_OK
    finally:
        await built.aclose()
    assert statuses(backend, "old") == [
        {"status": "failed", "error": "agent restarted during the job"}
    ]
