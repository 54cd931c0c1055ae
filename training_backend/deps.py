"""Typed FastAPI dependencies: the database session, the caller's API key, the job of a
job token and the agent's identity headers.

Use them as annotations: ``def route(db: DbSession, key: CurrentApiKey) -> ...``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from training_backend.body import read_json_object
from training_backend.db.models import ApiKey, TrainingJob
from training_backend.db.types import utcnow
from training_backend.services.agents import AgentIdentity, agent_identity_from_headers
from training_backend.services.api_keys import authenticate_api_key, extract_api_key
from training_backend.services.job_tokens import authenticate_job, extract_job_token
from training_backend.settings import BackendSettings, get_settings


async def get_db(request: Request) -> AsyncIterator[Session]:
    """One session per request, closed (rolled back if uncommitted) after the route.

    Async on purpose: sync routes and dependencies each run in a worker thread, and a
    request must never hold a pooled connection while it waits for a free thread, or
    under load every thread ends up waiting for a connection held by a request waiting
    for a thread. So the session is closed here on the event loop (no thread needed),
    and each sync dependency that reads ends its transaction before returning.
    """
    session: Session = request.app.state.session_factory()
    try:
        yield session
    finally:
        session.close()


DbSession = Annotated[Session, Depends(get_db)]
Settings = Annotated[BackendSettings, Depends(get_settings)]
JsonObject = Annotated[dict[str, Any], Depends(read_json_object)]


def current_api_key(request: Request, db: DbSession) -> ApiKey:
    """The caller's API key, checked for validity and for the ``training`` scope."""
    key = extract_api_key(request.headers)
    row = authenticate_api_key(db, key=key, scope="training", now=utcnow())
    db.commit()  # give the connection back before the next thread hop (see get_db)
    return row


CurrentApiKey = Annotated[ApiKey, Depends(current_api_key)]


def job_token(request: Request) -> str:
    """The bearer job token of a reporting call (401 ``MISSING_TOKEN`` without one)."""
    return extract_job_token(request.headers)


JobToken = Annotated[str, Depends(job_token)]


def job_from_token(job_id: str, token: JobToken, db: DbSession) -> TrainingJob:
    """The job named in the path, provided the bearer token is that job's token."""
    job = authenticate_job(db, job_id=job_id, token=token)
    db.commit()  # give the connection back before the next thread hop (see get_db)
    return job


JobFromToken = Annotated[TrainingJob, Depends(job_from_token)]


def agent_identity(request: Request) -> AgentIdentity:
    """The polling agent's id (checked) and its optional hostname, platform and version."""
    return agent_identity_from_headers(request.headers)


Agent = Annotated[AgentIdentity, Depends(agent_identity)]
