"""Offers without a herd: concurrent pollers of one user are offered different jobs (each
reserved for its agent a few seconds), a lapsed offer goes to the next agent, and any
agent of the user may still claim: nothing is ever lost or claimed twice."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.orm import Session

from tests.backend.support import Caller, MakeJob
from training_backend.db.models import TrainingJob
from training_backend.db.types import utcnow
from training_backend.services import recheck
from training_backend.services.wakeups import Wakeups

POLL = "/api/training/agent/poll"
AGENTS = 8


def agent(n: int) -> str:
    return f"agent_offer{n:06d}"


async def test_concurrent_pollers_are_offered_different_jobs(
    client: httpx.AsyncClient, caller: Caller, make_job: MakeJob
) -> None:
    jobs = {make_job().id for _ in range(AGENTS)}
    answers = await asyncio.gather(
        *(client.get(POLL, headers=caller.headers(agent(n))) for n in range(AGENTS))
    )
    offered = [answer.json()["job"]["id"] for answer in answers]
    assert sorted(offered) == sorted(jobs)  # each job once, to one agent each


async def test_a_job_offered_to_an_agent_can_still_be_claimed_by_another(
    client: httpx.AsyncClient, caller: Caller, make_job: MakeJob
) -> None:
    job = make_job()
    await client.get(POLL, headers=caller.headers(agent(1)))  # offered to agent 1
    claim = await client.post(
        f"/api/training/agent/claim/{job.id}", headers=caller.headers(agent(2))
    )
    late = await client.post(
        f"/api/training/agent/claim/{job.id}", headers=caller.headers(agent(1))
    )
    assert claim.status_code == 200
    assert (late.status_code, late.json()["code"]) == (409, "ALREADY_CLAIMED")


async def test_a_lapsed_offer_wakes_another_waiting_agent(
    app: FastAPI,
    client: httpx.AsyncClient,
    caller: Caller,
    make_job: MakeJob,
    db: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(recheck, "RECHECK_SECONDS", 0.1)
    job = make_job()
    first = await client.get(POLL, headers=caller.headers(agent(1)))  # never claims it
    assert first.json()["job"]["id"] == job.id
    waiting = asyncio.create_task(
        client.get(POLL, params={"wait_seconds": 20}, headers=caller.headers(agent(2)))
    )
    wakeups: Wakeups = app.state.wakeups
    while wakeups.waiting(caller.user.id) < 1:
        await asyncio.sleep(0.01)
    # The hold runs out (as if OFFER_HOLD had passed): no signal, the re-check sees it.
    lapsed = utcnow() - timedelta(milliseconds=1)
    db.execute(update(TrainingJob).where(TrainingJob.id == job.id).values(available_at=lapsed))
    db.commit()
    answer = await asyncio.wait_for(waiting, 10)
    assert answer.json()["job"]["id"] == job.id
