"""The poll loop paces itself, claims only with room, and survives any answer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.support.fake_backend import API_KEY, IDENTITY, FakeBackend, job
from training_agent.api import BackendClient
from training_agent.poller import LONG_POLL_WAIT_S, Connection, Poller
from training_agent.status.state import AgentState

POLL = "GET /api/training/agent/poll"
CLAIM = "POST /api/training/agent/claim/job-1"


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


@pytest.fixture
async def poller(backend: FakeBackend) -> AsyncIterator[Poller]:
    client = backend.client()
    yield Poller(client=client, min_interval_s=1.0, sleep=Sleeps(), rng=lambda: 0.5)
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


async def test_rejected_key_waits_five_minutes_and_says_so_once(
    backend: FakeBackend, poller: Poller, caplog: pytest.LogCaptureFixture
) -> None:
    backend.on(POLL, httpx.Response(401, json={"error": "Invalid API key"}))
    delays = [(await poller.step(can_claim=True)).delay_s for _ in range(6)]
    assert poller.connection is Connection.REJECTED
    assert poller.reason is not None and poller.reason.startswith("API key rejected")
    assert all(300 <= delay <= 360 for delay in delays)
    said = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([r for r in said if "API key rejected" in r.getMessage()]) == 1  # not every time


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


def poller_with(backend: FakeBackend, **kwargs: Any) -> Poller:
    options: dict[str, Any] = {"min_interval_s": 1.0, "sleep": Sleeps(), "rng": lambda: 0.5}
    return Poller(client=backend.client(), **{**options, **kwargs})


async def test_a_rejected_key_is_read_again_once_and_a_new_one_used_at_once(
    backend: FakeBackend,
) -> None:
    new_key = "wak_" + "N" * 32

    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == f"Bearer {new_key}":
            return httpx.Response(200, json={"job": None})
        return httpx.Response(401, json={"error": "Invalid API key"})

    backend.on(POLL, answer)
    reads: list[int] = []

    def reload_key() -> SecretStr:
        reads.append(1)
        return SecretStr(new_key)

    poller = poller_with(backend, reload_key=reload_key)
    first = await poller.step(can_claim=True)
    assert first.delay_s == 0.0  # retry with the new key now
    await poller.step(can_claim=True)
    assert poller.connection is Connection.CONNECTED
    assert len(reads) == 1


async def test_an_unchanged_key_after_a_re_read_is_rejected(backend: FakeBackend) -> None:
    backend.on(POLL, httpx.Response(401, json={"error": "Invalid API key"}))
    reads: list[int] = []

    def reload_key() -> str:
        reads.append(1)
        return API_KEY

    poller = poller_with(backend, reload_key=reload_key)
    step = await poller.step(can_claim=True)
    assert step.delay_s >= 300
    assert poller.connection is Connection.REJECTED
    assert reads == [1]
    assert len(backend.requests) == 1


@pytest.mark.parametrize("route", [POLL, CLAIM])
async def test_a_revoked_agent_stops_polling_and_says_why_once(
    backend: FakeBackend, route: str, caplog: pytest.LogCaptureFixture
) -> None:
    revoked = httpx.Response(403, json={"error": "This agent was revoked", "code": "AGENT_REVOKED"})
    backend.on(POLL, httpx.Response(200, json={"job": job()}))
    backend.on(route, revoked)
    state = AgentState(agent_id="agent_0123456789abcdef", version="1", backend_url="x")
    poller = poller_with(backend, state=state)

    claimed = [j async for j in poller.jobs(can_claim=lambda: True)]

    assert claimed == []
    assert poller.connection is Connection.REVOKED
    assert poller.revoked is not None and "revoked this agent" in poller.revoked
    assert state.connection.state == "revoked"
    said = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([r for r in said if "revoked this agent" in r.getMessage()]) == 1
    assert len(backend.calls(POLL)) == 1


async def test_transport_errors_back_off_up_to_a_minute_with_a_floor(
    backend: FakeBackend,
) -> None:
    backend.on(POLL, lambda request: (_ for _ in ()).throw(httpx.ConnectError("refused")))
    high = poller_with(backend, rng=lambda: 1.0)
    delays = [(await high.step(can_claim=True)).delay_s for _ in range(8)]
    assert delays == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    low = poller_with(backend, rng=lambda: 0.0, min_interval_s=1.5)
    assert [(await low.step(can_claim=True)).delay_s for _ in range(3)] == [1.5] * 3
    assert high.connection is Connection.UNREACHABLE


async def test_each_poll_carries_the_resource_headers_and_reports_to_the_state(
    backend: FakeBackend,
) -> None:
    backend.on(POLL, httpx.Response(200, json={"job": None, "features": ["heartbeat"]}))
    state = AgentState(agent_id="agent_0123456789abcdef", version="1", backend_url="x")
    ticks = iter([10.0, 10.25])
    poller = poller_with(
        backend,
        state=state,
        headers=lambda: {"X-Agent-Info": '{"cpu_count":2}', "X-Agent-Current-Jobs": "j9"},
        clock=lambda: next(ticks),
    )
    await poller.step(can_claim=True)
    request = backend.requests[-1]
    assert request.headers["X-Agent-Info"] == '{"cpu_count":2}'
    assert request.headers["X-Agent-Current-Jobs"] == "j9"
    assert state.connection.state == "connected"
    assert state.connection.last_poll_latency_s == pytest.approx(0.25)
    assert state.connection.features == ["heartbeat"]
    assert poller.features_known


async def test_a_long_poll_answered_at_once_waits_the_interval(backend: FakeBackend) -> None:
    # A backend at its per-key cap of held polls answers a long poll at once, like a
    # plain poll: the agent must wait the interval, not poll again in a tight loop.
    answer = {"job": None, "features": ["long_poll"], "poll_interval_seconds": 5}
    backend.on(POLL, httpx.Response(200, json=answer))
    sleeps = Sleeps()
    now = [100.0]
    poller = poller_with(backend, sleep=sleeps, clock=lambda: now[0])

    async def consume() -> None:
        async for _claimed in poller.jobs(can_claim=lambda: True):
            pass

    task = asyncio.create_task(consume())
    while len(backend.requests) < 6:
        await asyncio.sleep(0)
    poller.stop()
    await asyncio.wait_for(task, 2)

    waits = [r.url.params.get("wait_seconds") for r in backend.requests]
    assert waits[1:] == [f"{LONG_POLL_WAIT_S:g}"] * (len(waits) - 1)
    assert len(sleeps.delays) >= 5 and all(d == pytest.approx(5.0) for d in sleeps.delays)

    def held(request: httpx.Request) -> httpx.Response:
        now[0] += LONG_POLL_WAIT_S  # this time the backend held the poll its whole wait
        return httpx.Response(200, json=answer)

    backend.on(POLL, held)
    assert (await poller.step(can_claim=True)).delay_s == 0.0  # the next goes out at once


async def test_refresh_abandons_a_held_poll_for_one_with_fresh_headers() -> None:
    # The self-update's state changed: the page should learn it now, not after a long
    # poll the backend may hold for 30 s.
    seen: list[str | None] = []

    async def backend(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("X-Agent-Info"))
        if len(seen) == 2:
            await asyncio.Event().wait()  # held until abandoned
        answer = {"job": None, "features": ["long_poll"], "poll_interval_seconds": 5}
        return httpx.Response(200, json=answer)

    client = BackendClient(
        base_url="http://backend.test",
        api_key=SecretStr(API_KEY),
        identity=IDENTITY,
        transport=httpx.MockTransport(backend),
    )
    info = ["before"]
    poller = Poller(
        client=client,
        min_interval_s=1.0,
        sleep=Sleeps(),
        rng=lambda: 0.5,
        headers=lambda: {"X-Agent-Info": info[0]},
    )

    async def consume() -> None:
        async for _claimed in poller.jobs(can_claim=lambda: True):
            pass

    task = asyncio.create_task(consume())
    async with asyncio.timeout(5):
        while len(seen) < 2:
            await asyncio.sleep(0.01)
        info[0] = "after"
        poller.refresh()
        while len(seen) < 3:
            await asyncio.sleep(0.01)
    poller.stop()
    await asyncio.wait_for(task, 2)
    await client.aclose()

    assert seen[:3] == ["before", "before", "after"]
