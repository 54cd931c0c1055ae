"""The agent protocol: poll for work (optionally held: ``long_poll``) and claim it.

The poll is an async route: it may wait up to 30 s, and must hold neither a worker
thread nor a database connection meanwhile; ``services.dispatch`` runs its database
work in worker threads, each look with a session of its own. A poll the process's
caches can answer (``services.checkin.quick_check_in``) needs neither a thread nor the
database, and its ``null`` answer is serialised once; the plainest of those never get
here (``quick_polls.QuickPolls`` answers them before FastAPI routes anything).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from training_backend.db.types import utcnow
from training_backend.deps import (
    Agent,
    CurrentApiKey,
    DbSession,
    SettingsDep,
    poll_desk,
    update_offers,
)
from training_backend.errors import ApiError
from training_backend.routing import DbRoute
from training_backend.schemas.agent import ClaimAnswer, PollAnswer
from training_backend.schemas.jobs import JobDispatch
from training_backend.services.agents import AgentIdentity, agent_identity_from_headers
from training_backend.services.checkin import (
    check_in_agent,
    quick_check_in,
)
from training_backend.services.claims import claim_job
from training_backend.services.dispatch import clamp_wait
from training_backend.services.jobs import dataset_of
from training_backend.services.matching import AgentProfile
from training_backend.services.polls import answer_poll
from training_backend.settings import BackendSettings

JSON = "application/json"

router = APIRouter(prefix="/api/training/agent", tags=["agent protocol"], route_class=DbRoute)


def _backend_url(request: Request, settings: BackendSettings) -> str:
    return settings.public_url or str(request.base_url).rstrip("/")


@router.get("/poll", response_model=PollAnswer)
async def poll(
    request: Request,
    wait_seconds: Annotated[
        float | None, Query(description="hold up to this long (max 30)")
    ] = None,
) -> Response:
    """Record that the agent is alive and offer it a job it can take.

    With ``wait_seconds`` the answer waits until a job is there or the time is up.
    """
    desk = poll_desk(request.app)
    settings = desk.settings
    wait_s = clamp_wait(wait_seconds)
    # Read once (each get() of Headers scans them all); the first of repeated headers
    # wins, as with Headers.get.
    headers = dict(reversed(request.headers.items()))

    def url() -> str:
        return _backend_url(request, settings)

    # A long poll records until when it is held: the page shows its agent "connected now".
    now = utcnow()
    holding_until = now + timedelta(seconds=wait_s) if wait_s > 0 else None
    agent: AgentIdentity | None = None
    quick = None
    try:
        agent = agent_identity_from_headers(headers)
    except ApiError:
        pass  # the full check-in says what is wrong, in its order
    else:
        quick = quick_check_in(
            desk, headers, agent, backend_url=url, now=now, holding_until=holding_until
        )

    body = await answer_poll(
        desk,
        update_offers(request.app),
        headers,
        agent=agent,
        quick=quick,
        wait_s=wait_s,
        holding_until=holding_until,
        backend_url=url,
    )
    return Response(body, media_type=JSON)


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
    seen = check_in_agent(
        db, user_id=key.user_id, agent=agent, settings=settings, backend_url=url, now=now
    )
    # What the agent is: its claim's X-Agent-Info, else what its last poll said.
    info = agent.info if agent.info is not None else seen.metadata.get("info")
    profile = AgentProfile.of(agent.agent_id, info if isinstance(info, dict) else None)
    job, token = claim_job(
        db,
        job_id=job_id,
        user_id=key.user_id,
        agent_id=agent.agent_id,
        now=now,
        lease_seconds=settings.lease_seconds,
        key_id=key.id,
        fits=profile.could_ever,
    )
    dispatch = JobDispatch.of(job, dataset=dataset_of(db, job))
    return ClaimAnswer(job_token=token, job=dispatch, lease_seconds=settings.lease_seconds)
