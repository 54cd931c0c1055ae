"""Whatever the server answers to a poll, a claim or a heartbeat, the agent goes on.

Hypothesis draws the status, the body (JSON of any shape, near-misses of the real
shapes, or bytes that are not JSON) and a Retry-After header; the poller and the job
control must turn every answer into a decision (a wait, a claim or none, a command or
none) and never raise.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.fake_backend import FakeBackend, job
from training_agent.control import JobControl
from training_agent.jobs import ClaimedJob
from training_agent.poller import Poller

POLL = "GET /api/training/agent/poll"
CLAIM = "POST /api/training/agent/claim/job-1"
HEARTBEAT = "POST /api/training/local/job-1/heartbeat"
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
# Near-misses of the real answers: the right keys with values of any type.
poll_bodies = st.fixed_dictionaries(
    {},
    optional={
        "job": st.none() | json_values | st.just(job()),
        "poll_interval_seconds": scalars,
        "features": json_values | st.lists(st.sampled_from(["long_poll", "heartbeat", "x"])),
    },
)
claim_bodies = st.fixed_dictionaries(
    {},
    optional={
        "job_token": scalars,
        "job": st.none() | json_values | st.just(job()),
        "lease_seconds": scalars,
        "success": scalars,
    },
)
heartbeat_bodies = st.fixed_dictionaries(
    {},
    optional={
        "control": scalars | st.sampled_from(["cancel", "pause", "resume"]),
        "lease_expires_at": scalars,
        "code": st.sampled_from(["LEASE_EXPIRED", "JOB_NOT_ACTIVE", "AGENT_REVOKED", "X"]),
        "current_status": scalars,
        "error": scalars,
    },
)
statuses = st.sampled_from([200, 201, 204, 301, 400, 401, 403, 404, 408, 409, 413, 429, 500, 503])
retry_after = st.none() | st.text(max_size=30) | st.integers(-10, 10**12).map(str)


def answer(status: int, body: Any, raw: bytes | None, retry: str | None) -> httpx.Response:
    headers = {} if retry is None else {"Retry-After": retry.encode("ascii", "replace").decode()}
    if raw is not None:
        return httpx.Response(status, content=raw, headers=headers)
    return httpx.Response(status, content=json.dumps(body).encode(), headers=headers)


def well_formed(delay: float) -> bool:
    return math.isfinite(delay) and delay >= 0


async def quick(_delay: float) -> None:
    await asyncio.sleep(0)


@FUZZ
@given(
    status=statuses,
    body=poll_bodies | json_values,
    raw=st.none() | st.binary(max_size=40),
    retry=retry_after,
)
def test_any_poll_answer_is_survived(
    status: int, body: Any, raw: bytes | None, retry: str | None
) -> None:
    async def scenario() -> None:
        backend = FakeBackend()
        backend.on(POLL, answer(status, body, raw, retry))
        client = backend.client()
        poller = Poller(client=client, sleep=quick)
        try:
            step = await poller.step(can_claim=True)
        finally:
            await client.aclose()
        assert well_formed(step.delay_s)

    asyncio.run(scenario())


@FUZZ
@given(
    status=statuses,
    body=claim_bodies | json_values,
    raw=st.none() | st.binary(max_size=40),
    retry=retry_after,
)
def test_any_claim_answer_is_survived(
    status: int, body: Any, raw: bytes | None, retry: str | None
) -> None:
    async def scenario() -> None:
        backend = FakeBackend()
        backend.on(POLL, httpx.Response(200, json={"job": job()}))
        backend.on(CLAIM, answer(status, body, raw, retry))
        client = backend.client()
        poller = Poller(client=client, sleep=quick)
        try:
            step = await poller.step(can_claim=True)
        finally:
            await client.aclose()
        assert well_formed(step.delay_s)
        if step.job is not None:
            assert step.job.job_token and step.job.id

    asyncio.run(scenario())


class Runner:
    def __init__(self) -> None:
        self.requests: list[str] = []

    def request_cancel(self, reason: str) -> None:
        self.requests.append("cancel")

    def request_pause(self) -> bool:
        self.requests.append("pause")
        return False

    def request_resume(self) -> bool:
        self.requests.append("resume")
        return False


@FUZZ
@given(
    status=statuses,
    body=heartbeat_bodies | json_values,
    raw=st.none() | st.binary(max_size=40),
    retry=retry_after,
    heartbeat=st.booleans(),
)
def test_any_heartbeat_or_status_answer_is_survived(
    status: int, body: Any, raw: bytes | None, retry: str | None, heartbeat: bool
) -> None:
    async def scenario() -> None:
        backend = FakeBackend()
        reply = answer(status, body, raw, retry)
        backend.on(HEARTBEAT, reply)
        backend.on("GET /api/training/local/job-1/status", reply)
        client = backend.client()
        runner = Runner()
        control = JobControl(
            job=ClaimedJob(id="job-1", job_token="tok-1", config={}),
            runner=runner,
            client=client,
            features=lambda: frozenset({"heartbeat"} if heartbeat else ()),
            sleep=quick,
        )
        try:
            await control.check_once()
            await control.check_once()
        finally:
            await client.aclose()
        assert set(runner.requests) <= {"cancel", "pause", "resume"}
        assert len(runner.requests) <= 1  # a repeated answer asks once

    asyncio.run(scenario())
