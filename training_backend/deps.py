"""Typed FastAPI dependencies: the database session, the caller's API key or signed-in
user, the job of a job token and the agent's identity headers.

Use them as annotations: ``def route(db: DbSession, key: CurrentApiKey) -> ...``.

    CurrentApiKey   an API key with the ``training`` scope (rate-limited per key); a key
                    an enrollment bound to an agent speaks only for that agent
    CurrentUser     a signed-in user: ``Authorization: Bearer sess_…`` or the session cookie
    ApiKeyOrUser    either of the two, as a ``Principal`` (API-key path when the request
                    carries ``X-API-Key``/``X-Workspace-API-Key`` or a ``wak_`` bearer)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from training_backend.body import read_json_object
from training_backend.db.models import ApiKey, TrainingJob, User
from training_backend.db.types import utcnow
from training_backend.ratelimit import ApiKeyRateLimit
from training_backend.services.agents import AgentIdentity, agent_identity_from_headers
from training_backend.services.api_keys import (
    authenticate_api_key,
    extract_api_key,
    require_agent,
    uses_api_key,
)
from training_backend.services.job_tokens import authenticate_job, extract_job_token
from training_backend.services.sessions import authenticate_session, session_token_of
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
    require_agent(row, request.headers.get("x-agent-id", "").strip() or None)
    limit: ApiKeyRateLimit = request.app.state.api_key_rate_limit
    limit.check(row.id)  # 429 RATE_LIMITED; only after the key is known to be valid
    return row


CurrentApiKey = Annotated[ApiKey, Depends(current_api_key)]


def current_user(request: Request, db: DbSession) -> User:
    """The signed-in user (401 ``UNAUTHENTICATED`` without a live session).

    A cookie-borne session on a state-changing request from another site's page is
    refused (403 ``CROSS_SITE_REQUEST``); a bearer token cannot be sent by another site.
    """
    token = session_token_of(request)
    user = authenticate_session(db, token=token, now=utcnow())
    db.commit()  # give the connection back before the next thread hop (see get_db)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


@dataclass(frozen=True)
class Principal:
    """Who calls a route open to API keys and signed-in users alike."""

    user_id: str
    api_key: ApiKey | None = None
    """The key used, or ``None`` for a signed-in user."""


def api_key_or_user(request: Request, db: DbSession) -> Principal:
    """The caller by API key (``training`` scope) or by session, whichever it sent."""
    if uses_api_key(request.headers):
        key = current_api_key(request, db)
        return Principal(user_id=key.user_id, api_key=key)
    return Principal(user_id=current_user(request, db).id)


ApiKeyOrUser = Annotated[Principal, Depends(api_key_or_user)]


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
