"""The quick lane for plain polls (``training_backend.quick_polls``): it answers what the
route would answer, byte for byte, and hands everything else to the route."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.backend.support import Caller, MakeJob
from training_backend.app import create_app
from training_backend.quick_polls import QuickPolls
from training_backend.settings import BackendSettings

POLL = "/api/training/agent/poll"


@pytest.fixture
def lane_answers(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The bodies the lane answered itself (the route answered every other poll)."""
    answered: list[bytes] = []
    real = QuickPolls._answer

    def counting(self: QuickPolls, scope: dict[str, object]) -> bytes | None:
        body = real(self, scope)
        if body is not None:
            answered.append(body)
        return body

    monkeypatch.setattr(QuickPolls, "_answer", counting)
    return answered


@pytest.fixture
async def secure(settings: BackendSettings) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(settings.model_copy(update={"cookie_secure": True}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://b.test") as http:
            yield http


async def test_a_warm_plain_poll_gets_the_routes_answer_from_the_lane(
    secure: httpx.AsyncClient, caller: Caller, lane_answers: list[bytes]
) -> None:
    by_route = await secure.get(POLL, headers=caller.headers())  # fills the caches
    assert lane_answers == []
    by_lane = await secure.get(POLL, headers=caller.headers())

    assert lane_answers == [by_lane.content]
    assert (by_lane.status_code, by_lane.content) == (by_route.status_code, by_route.content)
    assert by_lane.headers["content-type"] == by_route.headers["content-type"]
    # Inside the security middleware: the lane's answers carry its header too.
    assert by_lane.headers["strict-transport-security"].startswith("max-age=")


async def test_jobs_long_polls_and_errors_go_to_the_route(
    client: httpx.AsyncClient, caller: Caller, make_job: MakeJob, lane_answers: list[bytes]
) -> None:
    await client.get(POLL, headers=caller.headers())
    held = await client.get(POLL, params={"wait_seconds": 0.1}, headers=caller.headers())
    unknown = await client.get(POLL, headers=caller.headers("agent_someone_else"))
    no_agent = await client.get(POLL, headers=caller.headers(None))
    assert lane_answers == []
    assert held.json()["job"] is None and unknown.status_code == 200
    assert no_agent.status_code == 400

    job = make_job()  # no signal: the re-check ends "no job" within a second or two
    offered = None
    for _ in range(100):
        offered = (await client.get(POLL, headers=caller.headers())).json()["job"]
        if offered is not None:
            break
        await asyncio.sleep(0.05)
    assert offered is not None and offered["id"] == job.id
