"""The agent protocol: poll for work (optionally held: ``long_poll``) and claim it.

The poll is an async route: it may wait up to 30 s, and must hold neither a worker
thread nor a database connection meanwhile; ``services.dispatch`` runs its database
work in worker threads, each look with a session of its own.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from training_backend.db.types import utcnow
from training_backend.deps import (
    Agent,
    ApiKeyRateLimitDep,
    CurrentApiKey,
    DbSession,
    SessionFactoryDep,
    SettingsDep,
    UpdateOffersDep,
    WakeupsDep,
    current_api_key,
)
from training_backend.routing import DbRoute
from training_backend.schemas.agent import FEATURES, AgentUpdate, ClaimAnswer, PollAnswer
from training_backend.schemas.jobs import JobDispatch
from training_backend.services.agents import agent_identity_from_headers
from training_backend.services.claims import claim_job
from training_backend.services.dispatch import (
    CheckedIn,
    check_in_agent,
    clamp_wait,
    poll_for_job,
)
from training_backend.services.jobs import dataset_of
from training_backend.settings import BackendSettings

router = APIRouter(prefix="/api/training/agent", tags=["agent protocol"], route_class=DbRoute)


def _backend_url(request: Request, settings: BackendSettings) -> str:
    return settings.public_url or str(request.base_url).rstrip("/")


def _answer(
    job: JobDispatch | None, settings: BackendSettings, update: AgentUpdate | None = None
) -> PollAnswer:
    return PollAnswer(
        job=job,
        poll_interval_seconds=settings.poll_interval_seconds,
        features=list(FEATURES),
        message="No pending jobs available" if job is None else None,
        agent_update=update,
    )


@router.get("/poll")
async def poll(
    request: Request,
    settings: SettingsDep,
    sessions: SessionFactoryDep,
    wakeups: WakeupsDep,
    rate_limit: ApiKeyRateLimitDep,
    offers: UpdateOffersDep,
    wait_seconds: Annotated[
        float | None, Query(description="hold up to this long (max 30)")
    ] = None,
) -> PollAnswer:
    """Record that the agent is alive and offer it the user's oldest pending job.

    With ``wait_seconds`` the answer waits until a job is there or the time is up.
    """
    wait_s = clamp_wait(wait_seconds)

    def check_in(db: Session) -> CheckedIn:
        key = current_api_key(request, db, rate_limit)
        agent = agent_identity_from_headers(request.headers)
        url = _backend_url(request, settings)
        check_in_agent(
            db, user_id=key.user_id, agent=agent, settings=settings, backend_url=url, now=utcnow()
        )
        return CheckedIn(user_id=key.user_id, agent_id=agent.agent_id, key_id=key.id)

    job = await poll_for_job(sessions=sessions, wakeups=wakeups, wait_s=wait_s, check_in=check_in)
    agent = agent_identity_from_headers(request.headers)
    update = await run_in_threadpool(  # reads files, maybe the release mirror: not here
        offers.offer,
        settings,
        platform=agent.platform,
        version=agent.version,
        backend_url=_backend_url(request, settings),
    )
    return _answer(job, settings, update)


@router.post("/claim/{job_id}")
def claim(
    request: Request,
    job_id: str,
    key: CurrentApiKey,
    agent: Agent,
    db: DbSession,
    settings: SettingsDep,
) -> ClaimAnswer:
    """Give the job to the calling agent, atomically; the answer carries its job token.

    The claim counts as a check-in: an agent the backend has not seen before (one that
    claims without polling) gets its row, so it is listed and can be revoked.
    """
    url = _backend_url(request, settings)
    now = utcnow()
    check_in_agent(
        db, user_id=key.user_id, agent=agent, settings=settings, backend_url=url, now=now
    )
    job, token = claim_job(
        db,
        job_id=job_id,
        user_id=key.user_id,
        agent_id=agent.agent_id,
        now=now,
        lease_seconds=settings.lease_seconds,
        key_id=key.id,
    )
    dispatch = JobDispatch.of(job, dataset=dataset_of(db, job))
    return ClaimAnswer(job_token=token, job=dispatch, lease_seconds=settings.lease_seconds)
