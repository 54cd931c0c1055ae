"""JobControl: heartbeats or status reads, and what their answers ask of the job."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httpx
import pytest

from tests.support.fake_backend import FakeBackend
from training_agent.api import BackendClient
from training_agent.control import CANCELLED_ON_PLATFORM, JobControl
from training_agent.jobs import ClaimedJob

HEARTBEAT = "POST /api/training/local/j1/heartbeat"
STATUS = "GET /api/training/local/j1/status"
TOKEN = "tok_" + "t" * 40


@dataclass
class FakeRunner:
    cancels: list[str] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)

    def request_cancel(self, reason: str) -> None:
        self.cancels.append(reason)

    def request_pause(self) -> bool:
        self.asked.append("pause")
        return True

    def request_resume(self) -> bool:
        self.asked.append("resume")
        return True


async def no_sleep(_delay: float) -> None:
    await asyncio.sleep(0)


def control_for(
    client: BackendClient,
    runner: FakeRunner,
    *features: str,
    lease_seconds: float | None = None,
    lost: list[str] | None = None,
) -> JobControl:
    job = ClaimedJob(id="j1", job_token=TOKEN, config={}, lease_seconds=lease_seconds)
    return JobControl(
        job=job,
        runner=runner,
        client=client,
        features=lambda: frozenset(features),
        interval_s=30.0,
        sleep=no_sleep,
        on_lost=(lost if lost is not None else []).append,
    )


def test_intervals_respect_the_limits_and_the_lease(client: BackendClient) -> None:
    runner = FakeRunner()
    assert control_for(client, runner, "heartbeat").interval_s == 15.0
    assert control_for(client, runner, "heartbeat", lease_seconds=30).interval_s == 10.0
    assert control_for(client, runner).interval_s == 10.0  # v1: status read


async def test_a_heartbeat_renews_and_its_control_is_carried_out_once(
    backend: FakeBackend, client: BackendClient
) -> None:
    backend.on(
        HEARTBEAT,
        httpx.Response(200, json={"control": None, "lease_expires_at": "x"}),
        httpx.Response(200, json={"control": "pause"}),
        httpx.Response(200, json={"control": "pause"}),  # repeated until done: once
        httpx.Response(200, json={"control": "resume"}),
        httpx.Response(200, json={"control": "cancel"}),
    )
    runner = FakeRunner()
    control = control_for(client, runner, "heartbeat")
    for _ in range(5):
        await control.check_once()
    assert runner.asked == ["pause", "resume"]
    assert runner.cancels == [CANCELLED_ON_PLATFORM]
    assert [r.headers["Authorization"] for r in backend.requests] == [f"Bearer {TOKEN}"] * 5


async def test_a_v1_backend_is_watched_through_the_job_status(
    backend: FakeBackend, client: BackendClient
) -> None:
    backend.on(
        STATUS,
        httpx.Response(200, json={"status": "running"}),
        httpx.Response(200, json={"status": "cancelled"}),
    )
    runner = FakeRunner()
    control = control_for(client, runner)
    await control.check_once()
    assert runner.cancels == []
    await control.check_once()
    assert runner.cancels == [CANCELLED_ON_PLATFORM]
    assert backend.calls(HEARTBEAT) == []


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(409, json={"error": "lease expired", "code": "LEASE_EXPIRED"}),
        httpx.Response(401, json={"error": "bad token", "code": "INVALID_TOKEN"}),
        httpx.Response(
            409, json={"error": "x", "code": "JOB_NOT_ACTIVE", "current_status": "pending"}
        ),
    ],
)
async def test_a_lost_lease_stops_the_job_once(
    backend: FakeBackend, client: BackendClient, answer: httpx.Response
) -> None:
    backend.on(HEARTBEAT, answer)
    runner, lost = FakeRunner(), list[str]()
    control = control_for(client, runner, "heartbeat", lost=lost)
    await control.watch()  # ends by itself once the job is lost
    control.lose("again")
    assert lost == ["j1"]
    assert len(runner.cancels) == 1 and "lease lost" in runner.cancels[0]
    assert control.lost is not None


async def test_a_revoked_job_token_stops_the_job_and_says_why(
    backend: FakeBackend, client: BackendClient, caplog: pytest.LogCaptureFixture
) -> None:
    # Revoking an agent or its key retires the job tokens of its running jobs.
    revoked = {"error": "This job's token was revoked", "code": "JOB_TOKEN_REVOKED"}
    backend.on(HEARTBEAT, httpx.Response(403, json=revoked))
    runner, lost = FakeRunner(), list[str]()
    control = control_for(client, runner, "heartbeat", lost=lost)
    await control.watch()  # ends by itself once the job is gone
    assert lost == ["j1"]
    assert len(runner.cancels) == 1 and "revoked the job's token" in runner.cancels[0]
    said = [r.getMessage() for r in caplog.records if "nothing more is reported" in r.getMessage()]
    assert len(said) == 1


async def test_a_job_cancelled_before_its_heartbeat_is_cancelled(
    backend: FakeBackend, client: BackendClient
) -> None:
    body = {"error": "Job is cancelled", "code": "JOB_NOT_ACTIVE", "current_status": "cancelled"}
    backend.on(HEARTBEAT, httpx.Response(409, json=body))
    runner = FakeRunner()
    control = control_for(client, runner, "heartbeat")
    await control.check_once()
    assert runner.cancels == [CANCELLED_ON_PLATFORM] and control.lost is None


async def test_failed_heartbeats_are_said_once_and_the_job_goes_on(
    backend: FakeBackend, client: BackendClient, caplog: pytest.LogCaptureFixture
) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    backend.on(
        HEARTBEAT,
        down,
        httpx.Response(503, json={"error": "busy"}),
        httpx.Response(403, json={"error": "revoked", "code": "AGENT_REVOKED"}),
        httpx.Response(200, json={"control": None}),
    )
    runner = FakeRunner()
    control = control_for(client, runner, "heartbeat")
    for _ in range(4):
        await control.check_once()
    assert runner.cancels == [] and control.lost is None
    warnings = [r for r in caplog.records if "heartbeat failed" in r.getMessage()]
    assert len(warnings) == 1


async def test_watch_sleeps_the_interval_between_heartbeats(
    backend: FakeBackend, client: BackendClient
) -> None:
    backend.on(HEARTBEAT, httpx.Response(200, json={"control": None}))
    sleeps: list[float] = []

    async def sleep(delay: float) -> None:
        sleeps.append(delay)
        if len(sleeps) > 3:
            raise asyncio.CancelledError

    job = ClaimedJob(id="j1", job_token=TOKEN, config={}, lease_seconds=None)
    control = JobControl(
        job=job,
        runner=FakeRunner(),
        client=client,
        features=lambda: frozenset({"heartbeat"}),
        interval_s=12.0,
        sleep=sleep,
    )
    with pytest.raises(asyncio.CancelledError):
        await control.watch()
    assert sleeps == [12.0] * 4
    assert len(backend.calls(HEARTBEAT)) == 3
