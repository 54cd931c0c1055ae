"""The agent protocol: poll for work (optionally held: ``long_poll``) and claim it.

The poll is an async route: it may wait up to 30 s, and must hold neither a worker
thread nor a database connection meanwhile (see ``routing.py``). Its database work runs
in ``run_in_threadpool`` calls that each open and close their own session.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from training_backend.db.types import utcnow
from training_backend.deps import Agent, CurrentApiKey, DbSession, Settings, current_api_key
from training_backend.routing import DbRoute
from training_backend.schemas.agent import FEATURES, ClaimAnswer, PollAnswer
from training_backend.schemas.jobs import JobDispatch
from training_backend.services.agent_versions import require_supported
from training_backend.services.agents import (
    AgentIdentity,
    agent_identity_from_headers,
    poll_coalesce,
    record_poll,
)
from training_backend.services.claims import claim_job
from training_backend.services.dispatch import clamp_wait, wait_for_job
from training_backend.services.jobs import dataset_of, next_pending_job
from training_backend.services.wakeups import Wakeups
from training_backend.settings import BackendSettings

router = APIRouter(prefix="/api/training/agent", tags=["agent protocol"], route_class=DbRoute)


@dataclass
class _FirstLook:
    user_id: str
    job: JobDispatch | None
    event: asyncio.Event | None  # subscribed when the caller will wait


def _offer(db: Session, user_id: str) -> JobDispatch | None:
    job = next_pending_job(db, user_id=user_id)
    return None if job is None else JobDispatch.of(job, dataset=dataset_of(db, job))


def _require_supported(request: Request, settings: BackendSettings, agent: AgentIdentity) -> None:
    """426 for an agent older than ``min_agent_version``, before anything is recorded."""
    url = settings.public_url or str(request.base_url).rstrip("/")
    require_supported(
        agent.version,
        minimum=settings.min_agent_version,
        backend_url=url,
        platform=agent.platform,
    )


def _first_look(request: Request, wakeups: Wakeups | None) -> _FirstLook:
    factory: sessionmaker[Session] = request.app.state.session_factory
    with factory() as db:
        key = current_api_key(request, db)
        agent = agent_identity_from_headers(request.headers)
        settings: BackendSettings = request.app.state.settings
        _require_supported(request, settings, agent)
        coalesce = poll_coalesce(settings.online_threshold_seconds)
        record_poll(db, user_id=key.user_id, agent=agent, now=utcnow(), coalesce=coalesce)
        # Subscribe before looking, so a job submitted right after the look still wakes us.
        event = None if wakeups is None else wakeups.subscribe(key.user_id)
        try:
            job = _offer(db, key.user_id)
        except BaseException:
            if event is not None and wakeups is not None:
                wakeups.unsubscribe(key.user_id, event)
            raise
    return _FirstLook(key.user_id, job, event)


def _look_again(factory: sessionmaker[Session], user_id: str) -> JobDispatch | None:
    with factory() as db:
        return _offer(db, user_id)


def _answer(job: JobDispatch | None, settings: BackendSettings) -> PollAnswer:
    return PollAnswer(
        job=job,
        poll_interval_seconds=settings.poll_interval_seconds,
        features=list(FEATURES),
        message="No pending jobs available" if job is None else None,
    )


@router.get("/poll")
async def poll(
    request: Request,
    settings: Settings,
    wait_seconds: Annotated[
        float | None, Query(description="hold up to this long (max 30)")
    ] = None,
) -> PollAnswer:
    """Record that the agent is alive and offer it the user's oldest pending job.

    With ``wait_seconds`` the answer waits until a job is there or the time is up.
    """
    wait_s = clamp_wait(wait_seconds)
    wakeups: Wakeups = request.app.state.wakeups
    first = await run_in_threadpool(_first_look, request, wakeups if wait_s > 0 else None)
    if first.job is not None or first.event is None:
        if first.event is not None:
            wakeups.unsubscribe(first.user_id, first.event)
        return _answer(first.job, settings)
    factory = request.app.state.session_factory
    try:
        job = await wait_for_job(
            first.event,
            wait_s=wait_s,
            peek=lambda: run_in_threadpool(_look_again, factory, first.user_id),
            closing=lambda: wakeups.closing,
        )
    finally:
        wakeups.unsubscribe(first.user_id, first.event)
    return _answer(job, settings)


@router.post("/claim/{job_id}")
def claim(
    request: Request,
    job_id: str,
    key: CurrentApiKey,
    agent: Agent,
    db: DbSession,
    settings: Settings,
) -> ClaimAnswer:
    """Give the job to the calling agent, atomically; the answer carries its job token."""
    _require_supported(request, settings, agent)
    job, token = claim_job(
        db,
        job_id=job_id,
        user_id=key.user_id,
        agent_id=agent.agent_id,
        now=utcnow(),
        lease_seconds=settings.lease_seconds,
    )
    dispatch = JobDispatch.of(job, dataset=dataset_of(db, job))
    return ClaimAnswer(job_token=token, job=dispatch, lease_seconds=settings.lease_seconds)
