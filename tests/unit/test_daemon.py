"""The daemon against a scripted backend: real job processes, injected time."""

from __future__ import annotations

import asyncio
import logging
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from keyring.backends import fail
from pydantic import SecretStr

from tests.support.executor import command_job
from tests.support.fake_backend import API_KEY, IDENTITY, FakeBackend, job
from training_agent.agent import Agent, build_agent
from training_agent.config import Settings
from training_agent.control import CANCELLED_ON_PLATFORM
from training_agent.daemon import EXIT_OK, EXIT_REVOKED, Daemon
from training_agent.errors import ConfigError
from training_agent.jobs import JobStatus
from training_agent.journal import AGENT_RESTARTED, JobJournal
from training_agent.paths import AgentPaths
from training_agent.reporting.outbox import Outbox

POLL = "GET /api/training/agent/poll"
FEATURES = ["heartbeat", "leases", "log_offsets", "job_details"]


class VirtualTime:
    """A clock that moves only when someone sleeps; every sleep yields to the loop."""

    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.now += max(delay, 0.0)
        await asyncio.sleep(0.005)  # real time passes a little, so children run


class Offers:
    """The poll route of a backend: the oldest job not yet claimed, until it is claimed."""

    def __init__(self, backend: FakeBackend, features: list[str] = FEATURES) -> None:
        self.pending: list[str] = []
        self.features = features
        self.backend = backend

    def add(self, job_id: str, config: dict[str, Any]) -> None:
        self.pending.append(job_id)
        body = {"success": True, "job_token": f"tok-{job_id}", "job": job(job_id, config=config)}
        self.backend.on(f"POST /api/training/agent/claim/{job_id}", self._claim(job_id, body))

    def _claim(
        self, job_id: str, body: dict[str, Any]
    ) -> Callable[[httpx.Request], httpx.Response]:
        def claim(request: httpx.Request) -> httpx.Response:
            self.pending.remove(job_id)
            return httpx.Response(200, json=body)

        return claim

    def __call__(self, request: httpx.Request) -> httpx.Response:
        offered = job(self.pending[0]) if self.pending else None
        body = {"job": offered, "features": self.features, "poll_interval_seconds": 5}
        return httpx.Response(200, json=body)


def offer(backend: FakeBackend, *job_ids: str, config: dict[str, Any]) -> Offers:
    offers = Offers(backend)
    for job_id in job_ids:
        offers.add(job_id, config)
    backend.on(POLL, offers)
    return offers


def statuses(backend: FakeBackend, job_id: str) -> list[dict[str, Any]]:
    return backend.calls(f"PATCH /api/training/local/{job_id}/status")


def wired_agent(
    paths: AgentPaths, backend: FakeBackend, time: VirtualTime, **settings: Any
) -> Agent:
    """An agent as ``training-agent start`` wires it, on the fake backend and virtual time."""
    defaults: dict[str, Any] = {
        "backend_url": "http://backend.test",
        "allow_command_jobs": True,
        "cancel_grace_seconds": 1.0,
        "min_poll_interval_seconds": 0.1,
        "min_free_disk_gb": 0.0,
    }
    return build_agent(
        Settings(**{**defaults, **settings}),
        paths,
        api_key=SecretStr(API_KEY),
        identity=IDENTITY,
        transport=httpx.MockTransport(backend),
        clock=time.clock,
        sleep=time.sleep,
        rng=lambda: 0.5,
        nvml_loader=lambda: None,
    )


class MakeAgent(Protocol):
    def __call__(self, **settings: Any) -> Agent: ...


@pytest.fixture
def paths(tmp_path: Path) -> AgentPaths:
    return AgentPaths.under(tmp_path / "agent")


@pytest.fixture
async def make_agent(
    paths: AgentPaths, backend: FakeBackend, time: VirtualTime
) -> AsyncIterator[MakeAgent]:
    """``wired_agent`` with this test's paths, backend and time; closed after the test."""
    agents: list[Agent] = []

    def make(**settings: Any) -> Agent:
        agents.append(wired_agent(paths, backend, time, **settings))
        return agents[-1]

    yield make
    for agent in agents:
        await agent.aclose()


async def run(daemon: Daemon, timeout_s: float = 60) -> int:
    return await asyncio.wait_for(daemon.run(), timeout_s)


async def until(predicate: Callable[[], bool], timeout_s: float = 30) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.01)


@pytest.fixture
def time() -> VirtualTime:
    return VirtualTime()


def journals(paths: AgentPaths) -> Path:
    return paths.state_dir / "jobs"


async def test_a_backend_down_at_start_is_waited_for(
    make_agent: MakeAgent, backend: FakeBackend, time: VirtualTime
) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    offers = offer(backend, "job-1", config=command_job("print-lines", "2"))
    backend.on(POLL, *([down] * 8), offers)
    daemon = make_agent(max_jobs=1).daemon

    assert await run(daemon) == EXIT_OK

    assert [s["status"] for s in statuses(backend, "job-1")] == ["running", "completed"]
    assert time.now - 1000.0 > 60  # it backed off through a minute or more of outage


async def test_a_cancel_from_the_platform_is_reported_cancelled(
    make_agent: MakeAgent, backend: FakeBackend, time: VirtualTime
) -> None:
    offer(backend, "job-1", config=command_job("graceful-sigterm"))
    backend.on(
        "POST /api/training/local/job-1/heartbeat",
        httpx.Response(200, json={"control": None}),
        httpx.Response(200, json={"control": "cancel"}),
    )
    daemon = make_agent(max_jobs=1).daemon

    assert await run(daemon) == EXIT_OK

    final = statuses(backend, "job-1")[-1]
    assert (final["status"], final["error"]) == ("cancelled", CANCELLED_ON_PLATFORM)


async def test_a_lost_lease_stops_the_job_and_reports_nothing_more(
    make_agent: MakeAgent, backend: FakeBackend, time: VirtualTime
) -> None:
    offer(backend, "job-1", config=command_job("graceful-sigterm"))
    lost = httpx.Response(409, json={"error": "Lease expired", "code": "LEASE_EXPIRED"})
    backend.on("POST /api/training/local/job-1/heartbeat", lost)
    agent = make_agent(max_jobs=1)

    assert await run(agent.daemon) == EXIT_OK

    assert all(s["status"] == "running" for s in statuses(backend, "job-1"))
    recent = agent.state.recent[0]
    assert recent.status == "failed" and "lease lost" in (recent.error or "")
    assert agent.outbox.unfinished_jobs() == []
    assert not list(journals(agent.paths).glob("*/journal.json"))


async def test_a_revoked_agent_finishes_its_job_then_exits_4(
    make_agent: MakeAgent, backend: FakeBackend, time: VirtualTime
) -> None:
    revoked = httpx.Response(403, json={"error": "revoked", "code": "AGENT_REVOKED"})
    offers = offer(backend, "job-1", config=command_job("print-lines", "3"))
    backend.on(POLL, offers, revoked)
    daemon = make_agent().daemon

    assert await run(daemon) == EXIT_REVOKED

    assert statuses(backend, "job-1")[-1]["status"] == "completed"
    assert len(backend.calls(POLL)) == 2  # no poll after the revocation


async def test_idle_exit_stops_an_agent_without_work(
    make_agent: MakeAgent,
    backend: FakeBackend,
    time: VirtualTime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="training_agent.daemon")
    offer(backend, config={})
    daemon = make_agent(idle_exit_seconds=120).daemon

    assert await run(daemon) == EXIT_OK

    assert time.now - 1000.0 >= 120
    assert any("no job for 120s" in r.getMessage() for r in caplog.records)


async def test_a_crashed_run_is_reported_failed_before_anything_is_claimed(
    make_agent: MakeAgent, paths: AgentPaths, backend: FakeBackend, time: VirtualTime
) -> None:
    paths.ensure()
    outbox = Outbox(paths.outbox_file)
    outbox.open_job("old", "tok-old")
    outbox.append_status("old", JobStatus.RUNNING)
    outbox.append_logs("old", ["the last line before the crash"])
    outbox.close()
    journal = JobJournal(journals(paths), "old")
    journal.start()
    journal.started(999_999_999, "f" * 32)  # a pid that does not exist
    offer(backend, "job-1", config=command_job("exit", "0"))
    daemon = make_agent(max_jobs=1).daemon

    assert await run(daemon) == EXIT_OK

    order = [f"{r.method} {r.url.path}" for r in backend.requests]
    failed = order.index("PATCH /api/training/local/old/status", order.index(POLL) + 1)
    assert failed < order.index("POST /api/training/agent/claim/job-1")
    assert statuses(backend, "old")[-1] == {"status": "failed", "error": AGENT_RESTARTED}
    assert backend.calls("POST /api/training/local/old/logs")[0]["logs"] == [
        "the last line before the crash"
    ]
    assert not journal.path.exists()


async def test_drain_resume_and_cancel_job_through_the_controller(
    make_agent: MakeAgent, backend: FakeBackend, time: VirtualTime
) -> None:
    offer(backend, "job-1", "job-2", config=command_job("graceful-sigterm"))
    agent = make_agent(max_jobs=2)
    daemon, state = agent.daemon, agent.state
    task = asyncio.create_task(run(daemon))
    await until(lambda: "job-1" in state.jobs)

    daemon.drain()
    assert state.draining and not daemon._has_room()
    assert not daemon.cancel_job("job-9", "nope")
    assert daemon.cancel_job("job-1", "cancelled on this machine")
    await until(lambda: "job-1" not in state.jobs)
    await asyncio.sleep(0.05)
    assert backend.calls("POST /api/training/agent/claim/job-2") == []  # drained: no claim
    daemon.resume()
    assert not state.draining
    await until(lambda: "job-2" in state.jobs)
    assert daemon.cancel_job("job-2", "cancelled on this machine")

    assert await task == EXIT_OK
    for job_id in ("job-1", "job-2"):
        final = statuses(backend, job_id)[-1]
        assert (final["status"], final["error"]) == ("cancelled", "cancelled on this machine")


async def test_no_claim_while_the_disk_is_too_full(
    make_agent: MakeAgent,
    backend: FakeBackend,
    time: VirtualTime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    offer(backend, "job-1", config=command_job("exit", "0"))
    daemon = make_agent(min_free_disk_gb=10.0**9, idle_exit_seconds=60).daemon

    assert await run(daemon) == EXIT_OK

    assert len(backend.calls(POLL)) >= 2  # it kept polling, only without claiming
    assert not [r for r in backend.requests if r.method == "POST"]
    warnings = [r for r in caplog.records if "below min_free_disk_gb" in r.getMessage()]
    assert len(warnings) == 1


# Two jobs that each wait until both run, then print their GPUs: proves they overlapped.
OVERLAP = textwrap.dedent(
    """
    import os, pathlib, sys, time
    here = pathlib.Path(sys.argv[1])
    (here / os.environ["TRAINING_AGENT_JOB_ID"]).touch()
    deadline = time.monotonic() + 20
    while len(list(here.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    print("gpus=" + os.environ.get("CUDA_VISIBLE_DEVICES", "-"), flush=True)
    """
)


async def test_two_jobs_at_once_each_get_their_own_gpus(
    make_agent: MakeAgent, backend: FakeBackend, time: VirtualTime, tmp_path: Path
) -> None:
    meeting = tmp_path / "meeting"
    meeting.mkdir()
    config = {"type": "command", "command": [sys.executable, "-c", OVERLAP, str(meeting)]}
    offer(backend, "job-1", "job-2", config=config)
    daemon = make_agent(gpus="0,1,2,3", max_jobs=2, max_concurrent_jobs=2).daemon

    assert await run(daemon) == EXIT_OK

    seen = {
        job_id: [
            line
            for call in backend.calls(f"POST /api/training/local/{job_id}/logs")
            for line in call["logs"]
        ]
        for job_id in ("job-1", "job-2")
    }
    assert sorted(seen.values()) == [["gpus=0,1"], ["gpus=2,3"]]
    assert all(statuses(backend, j)[-1]["status"] == "completed" for j in seen)


async def test_polls_carry_the_running_jobs(
    make_agent: MakeAgent, backend: FakeBackend, time: VirtualTime
) -> None:
    offer(backend, "job-1", config=command_job("graceful-sigterm"))
    agent = make_agent(max_jobs=1)
    daemon = agent.daemon
    task = asyncio.create_task(run(daemon))
    await until(lambda: len(backend.calls(POLL)) >= 3)
    daemon.cancel_job("job-1", "enough")
    await task
    current = [
        r.headers.get("X-Agent-Current-Jobs")
        for r in backend.requests
        if r.url.path.endswith("/poll")
    ]
    assert current[0] == "" and "job-1" in current
    journal_dirs = list(journals(agent.paths).iterdir())
    assert journal_dirs == []  # removed once the last report was delivered


def test_an_agent_without_an_api_key_is_not_built(
    paths: AgentPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("keyring.core._keyring_backend", fail.Keyring())  # type: ignore[no-untyped-call]
    for name in ("API_KEY", "TRAINING_AGENT_API_KEY"):
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(ConfigError, match="run 'training-agent login' \\(or set API_KEY\\)"):
        build_agent(Settings(backend_url="http://backend.test"), paths)

    assert not paths.outbox_file.exists()


async def test_the_start_log_says_which_gpus_there_are_and_what_jobs_get(
    make_agent: MakeAgent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="training_agent.agent")
    make_agent(gpus="none")
    make_agent(gpus="0,1", max_concurrent_jobs=2)

    gpu_lines = [m for m in caplog.messages if m.startswith("gpus: ")]
    if sys.platform != "darwin":  # Apple silicon reports its mps GPU instead
        assert gpu_lines == [
            "gpus: no NVIDIA driver; jobs get no GPU",
            "gpus: no NVIDIA driver; jobs get 1 each of 0,1",
        ]
