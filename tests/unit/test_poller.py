"""The poll loop paces itself, claims only with room, and survives any answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.unit.fake_backend import FakeBackend, job
from training_agent.poller import LONG_POLL_WAIT_S, Connection, Poller

POLL = "GET /api/training/agent/poll"
CLAIM = "POST /api/training/agent/claim/job-1"


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
async def poller(backend: FakeBackend) -> AsyncIterator[Poller]:
    client = backend.client()
    yield Poller(
        client=client, min_interval_s=1.0, auth_retry_s=60.0, sleep=Sleeps(), rng=lambda: 0.5
    )
    await client.aclose()


async def test_claims_when_there_is_room(backend: FakeBackend, poller: Poller) -> None:
    backend.on(POLL, httpx.Response(200, json={"job": job(), "poll_interval_seconds": 5}))
    backend.on(
        CLAIM,
        httpx.Response(
            200, json={"success": True, "job_token": "t" * 43, "job": job(config={"type": "demo"})}
        ),
    )
    step = await poller.step(can_claim=True)
    assert step.job is not None
    assert (step.job.id, step.job.job_token, step.job.config) == (
        "job-1",
        "t" * 43,
        {"type": "demo"},
    )
    assert poller.connection is Connection.CONNECTED


async def test_polls_without_claiming_when_busy(backend: FakeBackend, poller: Poller) -> None:
    backend.on(POLL, httpx.Response(200, json={"job": job(), "poll_interval_seconds": 5}))
    step = await poller.step(can_claim=False)
    assert step.job is None
    assert step.delay_s == pytest.approx(5.0)  # rng 0.5 -> no jitter offset
    assert backend.calls(CLAIM) == []


async def test_lost_claim_is_a_normal_outcome(backend: FakeBackend, poller: Poller) -> None:
    backend.on(POLL, httpx.Response(200, json={"job": job()}))
    backend.on(
        CLAIM,
        httpx.Response(
            409, json={"error": "Job already claimed by another agent", "code": "ALREADY_CLAIMED"}
        ),
    )
    step = await poller.step(can_claim=True)
    assert step.job is None
    assert len(backend.calls(CLAIM)) == 1  # a 409 is not retried


async def test_garbage_answer_backs_off_and_keeps_going(
    backend: FakeBackend, poller: Poller
) -> None:
    backend.on(POLL, httpx.Response(200, text="<html>proxy error</html>"))
    step = await poller.step(can_claim=True)
    assert step.job is None and step.delay_s > 0
    assert poller.connection is Connection.UNREACHABLE
    backend.on(POLL, httpx.Response(200, json={"job": None}))
    await poller.step(can_claim=True)
    assert poller.connection.value == "connected"  # (mypy narrowed the attribute above)


async def test_rejected_key_waits_minutes_and_grows(
    backend: FakeBackend, poller: Poller, caplog: pytest.LogCaptureFixture
) -> None:
    backend.on(POLL, httpx.Response(401, json={"error": "Invalid API key"}))
    delays = [(await poller.step(can_claim=True)).delay_s for _ in range(6)]
    assert poller.connection is Connection.REJECTED
    assert delays[0] >= 48  # 60 s +/- 20 %
    assert delays == sorted(delays) and delays[-1] <= 60 * 8 * 1.2
    rejected = [r for r in caplog.records if "rejected the API key" in r.getMessage()]
    assert len(rejected) == 1  # said once, not every time


async def test_retry_after_is_a_floor(backend: FakeBackend, poller: Poller) -> None:
    backend.on(POLL, httpx.Response(429, headers={"Retry-After": "40"}, json={"error": "slow"}))
    step = await poller.step(can_claim=True)
    assert step.delay_s >= 40


async def test_long_poll_only_when_offered_and_idle(backend: FakeBackend, poller: Poller) -> None:
    backend.on(POLL, httpx.Response(200, json={"job": None, "features": ["long_poll"]}))
    await poller.step(can_claim=True)  # learns the features
    await poller.step(can_claim=True)
    await poller.step(can_claim=False)
    waits = [r.url.params.get("wait_seconds") for r in backend.requests]
    assert waits == [None, f"{LONG_POLL_WAIT_S:g}", None]


async def test_stop_ends_the_loop(backend: FakeBackend, poller: Poller) -> None:
    backend.on(POLL, httpx.Response(200, json={"job": None}))

    async def consume() -> int:
        return len([claimed async for claimed in poller.jobs(can_claim=lambda: True)])

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    poller.stop()
    assert await asyncio.wait_for(task, 2) == 0
