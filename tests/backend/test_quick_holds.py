"""The quick lane for held polls (``training_backend.quick_polls``): a long poll whose key
and agent the caches know is held without FastAPI, and answers, wakes and refuses
exactly as the route does."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session
from starlette.types import Scope

from tests.backend.support import AGENT_ID, Caller
from tests.backend.test_wakeups import hold, session_headers, until_waiting
from training_backend.quick_polls import QuickPolls, held_wait

POLL = "/api/training/agent/poll"
JOBS = "/api/training/jobs"


@pytest.fixture
def lane_holds(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The holds the lane took itself (the route took every other poll)."""
    taken: list[float] = []
    real = QuickPolls._check_in_held

    def counting(self: QuickPolls, scope: Scope, wait_s: float) -> object:
        held = real(self, scope, wait_s)
        if held is not None:
            taken.append(wait_s)
        return held

    monkeypatch.setattr(QuickPolls, "_check_in_held", counting)
    return taken


@pytest.fixture(autouse=True)
def slow_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the wake-up under test can end a hold early (not the shared re-check)."""
    from training_backend.services import recheck

    monkeypatch.setattr(recheck, "RECHECK_SECONDS", 3600.0)


async def test_a_warm_held_poll_that_ends_empty_reads_as_the_routes(
    client: httpx.AsyncClient, caller: Caller, lane_holds: list[float]
) -> None:
    by_route = await client.get(POLL, params={"wait_seconds": 0.2}, headers=caller.headers())
    assert lane_holds == []  # cold caches: the route checked it in and filled them
    by_lane = await client.get(POLL, params={"wait_seconds": 0.2}, headers=caller.headers())

    assert lane_holds == [0.2]
    assert (by_lane.status_code, by_lane.content) == (by_route.status_code, by_route.content)
    assert by_lane.headers["content-type"] == by_route.headers["content-type"]
    assert by_lane.json()["job"] is None


async def test_a_held_poll_in_the_lane_is_woken_by_a_submitted_job(
    app: FastAPI, client: httpx.AsyncClient, caller: Caller, lane_holds: list[float]
) -> None:
    await client.get(POLL, headers=caller.headers())  # fills the caches
    waiting = hold(client, caller)
    await until_waiting(app, caller.user.id)
    submitted = await client.post(JOBS, json={"config": {}}, headers=caller.headers(None))
    answer = await asyncio.wait_for(waiting, 20)

    assert lane_holds == [30.0]
    assert answer.status_code == 200
    assert answer.json()["job"]["id"] == submitted.json()["job"]["id"]
    assert app.state.wakeups.waiting() == 0


async def test_an_agent_revoked_during_a_held_poll_in_the_lane_gets_the_routes_403(
    app: FastAPI, client: httpx.AsyncClient, caller: Caller, db: Session, lane_holds: list[float]
) -> None:
    await client.get(POLL, headers=caller.headers())
    waiting = hold(client, caller)
    await until_waiting(app, caller.user.id)
    gone = await client.delete(
        f"/api/training/agents/{AGENT_ID}", headers=session_headers(db, caller)
    )
    answer = await asyncio.wait_for(waiting, 10)
    again = await client.get(POLL, params={"wait_seconds": 1}, headers=caller.headers())

    assert gone.status_code == 200 and lane_holds == [30.0]
    # Rendered by the app's own handler: the body every refusal has.
    assert answer.status_code == 403
    assert answer.json() == {"error": answer.json()["error"], "code": "AGENT_REVOKED"}
    assert "enable it again" in answer.json()["error"]
    assert (again.status_code, again.json()) == (403, answer.json())


async def test_polls_the_lane_does_not_take_go_to_the_route(
    client: httpx.AsyncClient, caller: Caller, lane_holds: list[float]
) -> None:
    await client.get(POLL, headers=caller.headers())
    extra = await client.get(POLL, params={"wait_seconds": 0.1, "x": "1"}, headers=caller.headers())
    bad = await client.get(POLL, params={"wait_seconds": "nan"}, headers=caller.headers())
    zero = await client.get(POLL, params={"wait_seconds": 0}, headers=caller.headers())
    unknown = await client.get(
        POLL, params={"wait_seconds": 0.1}, headers=caller.headers("agent_00000000000000ff")
    )

    assert lane_holds == []
    assert (extra.status_code, extra.json()["job"]) == (200, None)
    assert (bad.status_code, bad.json()["code"]) == (400, "INVALID_REQUEST")
    assert zero.status_code == 200 and unknown.status_code == 200


@pytest.mark.parametrize(
    ("query", "wait"),
    [
        (b"wait_seconds=30", 30.0),
        (b"wait_seconds=2.5", 2.5),
        (b"wait_seconds=600", 30.0),  # clamped, as the route clamps it
        (b"wait_seconds=0", None),
        (b"wait_seconds=-1", None),
        (b"wait_seconds=1e3", None),
        (b"wait_seconds=3_0", None),
        (b"wait_seconds=nan", None),
        (b"wait_seconds=1&wait_seconds=2", None),
        (b"wait_seconds=", None),
        (b"x=1", None),
    ],
)
def test_the_lane_reads_only_a_plain_wait(query: bytes, wait: float | None) -> None:
    assert held_wait(query) == wait
