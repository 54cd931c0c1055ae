"""The agent protocol: poll for work and claim it (API key + ``X-Agent-ID``)."""

from __future__ import annotations

from fastapi import APIRouter

from training_backend.db.types import utcnow
from training_backend.deps import Agent, CurrentApiKey, DbSession, Settings
from training_backend.routing import DbRoute
from training_backend.schemas.agent import FEATURES, ClaimAnswer, PollAnswer
from training_backend.schemas.jobs import JobDispatch
from training_backend.services.agents import record_poll
from training_backend.services.claims import claim_job
from training_backend.services.jobs import next_pending_job

router = APIRouter(prefix="/api/training/agent", tags=["agent protocol"], route_class=DbRoute)


@router.get("/poll")
def poll(key: CurrentApiKey, agent: Agent, db: DbSession, settings: Settings) -> PollAnswer:
    """Record that the agent is alive and offer it the user's oldest pending job."""
    record_poll(db, user_id=key.user_id, agent=agent, now=utcnow())
    job = next_pending_job(db, user_id=key.user_id)
    return PollAnswer(
        job=None if job is None else JobDispatch.of(job),
        poll_interval_seconds=settings.poll_interval_seconds,
        features=list(FEATURES),
        message="No pending jobs available" if job is None else None,
    )


@router.post("/claim/{job_id}")
def claim(job_id: str, key: CurrentApiKey, agent: Agent, db: DbSession) -> ClaimAnswer:
    """Give the job to the calling agent, atomically; the answer carries its job token."""
    job, token = claim_job(
        db, job_id=job_id, user_id=key.user_id, agent_id=agent.agent_id, now=utcnow()
    )
    return ClaimAnswer(job_token=token, job=JobDispatch.of(job))
