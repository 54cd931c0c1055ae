"""Request budgets under a 429 storm, a total outage and a rejected key.

Counted at a fake server over one hour of injected time; the budgets are the ones
docs/operations.md promises:

- poll, backend unreachable or 5xx: about 2 per minute once backed off (uniform 0-60 s),
  never more than one per ``min_poll_interval_seconds``: at most 150 in an hour;
- poll, 429 with ``Retry-After: N``: at most one per N seconds;
- poll, key rejected: at most one per 5 minutes (13 in an hour, the first included);
- reports of one job, backend unreachable: at most 150 in an hour.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import httpx
import pytest

from tests.support.fake_backend import FakeBackend
from training_agent.poller import Poller
from training_agent.reporting.outbox import Outbox
from training_agent.reporting.uploader import Uploader

HOUR_S = 3600.0
POLL = "GET /api/training/agent/poll"


class HourIsOver(BaseException):
    """Raised by the virtual sleep once an hour has passed. A BaseException, like
    cancellation: the uploader keeps one job's failure (an Exception) from stopping the
    others, and this must end the test instead."""


class VirtualHour:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    async def sleep(self, delay: float) -> None:
        self.waits.append(delay)
        self.now += delay
        if self.now >= HOUR_S:
            raise HourIsOver
        await asyncio.sleep(0)


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused")


async def poll_for_an_hour(backend: FakeBackend, seed: int) -> VirtualHour:
    hour = VirtualHour()
    poller = Poller(
        client=backend.client(),
        min_interval_s=2.0,
        sleep=hour.sleep,
        rng=random.Random(seed).random,
    )
    with pytest.raises(HourIsOver):
        async for _job in poller.jobs(can_claim=lambda: True):
            pass
    return hour


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize(
    "failure",
    [refuse, lambda _r: httpx.Response(503, json={"error": "down"})],
    ids=["unreachable", "503"],
)
async def test_an_outage_costs_at_most_150_polls_an_hour(failure: object, seed: int) -> None:
    backend = FakeBackend()
    backend.on(POLL, failure)  # type: ignore[arg-type]
    hour = await poll_for_an_hour(backend, seed)
    assert 100 <= len(backend.requests) <= 150
    assert min(hour.waits) >= 2.0 and max(hour.waits) <= 60.0


@pytest.mark.parametrize("retry_after", [5, 30, 120])
async def test_a_429_storm_honours_retry_after(retry_after: int) -> None:
    backend = FakeBackend()
    backend.on(
        POLL,
        httpx.Response(429, headers={"Retry-After": str(retry_after)}, json={"error": "slow"}),
    )
    hour = await poll_for_an_hour(backend, seed=1)
    assert len(backend.requests) <= HOUR_S / retry_after + 1
    assert min(hour.waits) >= retry_after


async def test_a_rejected_key_costs_one_poll_per_five_minutes() -> None:
    backend = FakeBackend()
    backend.on(POLL, httpx.Response(401, json={"error": "Invalid API key"}))
    await poll_for_an_hour(backend, seed=2)
    assert len(backend.requests) <= HOUR_S / 300 + 1


@pytest.mark.parametrize("seed", range(5))
async def test_reports_during_an_outage_cost_at_most_150_requests_an_hour(
    tmp_path: Path, seed: int
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.open_job("j1", "token")
    outbox.append_logs("j1", ["a line that waits"])
    backend = FakeBackend()
    backend.on("POST /api/training/local/j1/logs", refuse)
    hour = VirtualHour()
    uploader = Uploader(
        outbox=outbox,
        client=backend.client(),
        features=lambda: frozenset({"log_offsets"}),
        sleep=hour.sleep,
        rng=random.Random(seed).random,
    )
    with pytest.raises(HourIsOver):
        await uploader.drain_once()
    assert 100 <= len(backend.requests) <= 150
    assert outbox.pending_logs("j1", limit=10) is not None  # nothing lost meanwhile
