"""Typed FastAPI dependencies: the app's shared objects, the database session, the
caller's API key or signed-in user, the job of a job token and the agent's identity headers.

Use them as annotations: ``def route(db: DbSession, key: CurrentApiKey) -> ...``. This
module is the only reader of ``request.app.state`` (``app.create_app`` fills it; tests
replace its objects to drive the clock):

    SettingsDep         the ``BackendSettings`` the app was created with
    SessionFactoryDep   makes sessions, for routes that must not hold one (long polls, uploads)
    WakeupsDep          the long polls waiting in this process
    ArtifactStoreDep    where artifact bytes live (a directory or an S3 bucket)
    UploadHashesDep     running SHA-256s and per-artifact locks of this process's uploads
    ChunkBuffersDep     the buffers artifact chunks are received into
    ApiKeyRateLimitDep, JobRateLimitDep, LoginThrottleDep, EnrollRateLimitDep
                        the in-memory rate limits
    ReleaseMirrorDep    fetches agent releases from ``releases_url`` on first use
    poll_desk(app), update_offers(app)
                        all a poll needs (the above, the key rate limit, the poll caches),
                        and the ``agent_update`` it offers: plain functions, since the
                        poll is the hottest route

    CurrentApiKey   an API key with the ``training`` scope (rate-limited per key); a key
                    an enrollment bound to an agent speaks only for that agent
    CurrentUser     a signed-in user: ``Authorization: Bearer sess_…`` or the session cookie
    ApiKeyOrUser    either of the two, as a ``Principal`` (API-key path when the request
                    carries ``X-API-Key``/``X-Workspace-API-Key`` or a ``wak_`` bearer)
    PageUser        the signed-in user of a page, or ``None`` (the page asks to sign in)

The app-state readers are ``async`` on purpose: a sync dependency costs a worker-thread
hop, and these only read an attribute.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from sqlalchemy.orm import Session, sessionmaker

from training_backend.body import read_json_object
from training_backend.db.models import ApiKey, TrainingJob, User
from training_backend.db.types import utcnow
from training_backend.errors import ApiError
from training_backend.ratelimit import (
    AddressRateLimit,
    ApiKeyRateLimit,
    JobRateLimit,
    LoginThrottle,
)
from training_backend.services.agent_updates import UpdateOffers
from training_backend.services.agents import AgentIdentity, agent_identity_from_headers
from training_backend.services.api_keys import (
    authenticate_api_key,
    extract_api_key,
    require_agent,
    uses_api_key,
)
from training_backend.services.artifact_store import ArtifactStore
from training_backend.services.checkin import PollDesk
from training_backend.services.chunk_buffers import ChunkBuffers
from training_backend.services.job_tokens import authenticate_job, extract_job_token
from training_backend.services.release_mirror import ReleaseMirror
from training_backend.services.sessions import authenticate_session, session_token_of
from training_backend.services.upload_hashes import UploadHashes
from training_backend.services.wakeups import Wakeups
from training_backend.settings import BackendSettings


async def get_settings(request: Request) -> BackendSettings:
    """The settings the app was created with (tests override this dependency)."""
    settings: BackendSettings = request.app.state.settings
    return settings


async def get_session_factory(request: Request) -> sessionmaker[Session]:
    """The app's session factory (made when the app starts, on the migrated database)."""
    factory: sessionmaker[Session] = request.app.state.session_factory
    return factory


async def get_wakeups(request: Request) -> Wakeups:
    """The long polls waiting in this process, to wake or to join."""
    wakeups: Wakeups = request.app.state.wakeups
    return wakeups


async def get_artifact_store(request: Request) -> ArtifactStore:
    """Where artifact bytes are kept."""
    store: ArtifactStore = request.app.state.artifact_store
    return store


async def get_upload_hashes(request: Request) -> UploadHashes:
    """This process's running hashes of artifact uploads."""
    hashes: UploadHashes = request.app.state.upload_hashes
    return hashes


async def get_chunk_buffers(request: Request) -> ChunkBuffers:
    """The buffers this process receives artifact chunks into."""
    buffers: ChunkBuffers = request.app.state.chunk_buffers
    return buffers


async def get_api_key_rate_limit(request: Request) -> ApiKeyRateLimit:
    """The per-key request budget."""
    limit: ApiKeyRateLimit = request.app.state.api_key_rate_limit
    return limit


async def get_job_rate_limit(request: Request) -> JobRateLimit:
    """The per-job request budget of job-token routes."""
    limit: JobRateLimit = request.app.state.job_rate_limit
    return limit


async def get_login_throttle(request: Request) -> LoginThrottle:
    """What slows down repeated failed sign-ins."""
    throttle: LoginThrottle = request.app.state.login_throttle
    return throttle


async def get_enroll_rate_limit(request: Request) -> AddressRateLimit:
    """The per-address budget of the enrollment endpoint (it has no key to count by)."""
    limit: AddressRateLimit = request.app.state.enroll_rate_limit
    return limit


async def get_release_mirror(request: Request) -> ReleaseMirror:
    """This process's fetches of agent releases (their locks and recent failures)."""
    mirror: ReleaseMirror = request.app.state.release_mirror
    return mirror


def update_offers(app: FastAPI) -> UpdateOffers:
    """The updates this process offers agents in poll answers (a plain function, read by
    the poll itself: see ``poll_desk``)."""
    offers: UpdateOffers = app.state.update_offers
    return offers


SettingsDep = Annotated[BackendSettings, Depends(get_settings)]
SessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]
WakeupsDep = Annotated[Wakeups, Depends(get_wakeups)]
ArtifactStoreDep = Annotated[ArtifactStore, Depends(get_artifact_store)]
UploadHashesDep = Annotated[UploadHashes, Depends(get_upload_hashes)]
ChunkBuffersDep = Annotated[ChunkBuffers, Depends(get_chunk_buffers)]
ApiKeyRateLimitDep = Annotated[ApiKeyRateLimit, Depends(get_api_key_rate_limit)]
JobRateLimitDep = Annotated[JobRateLimit, Depends(get_job_rate_limit)]
LoginThrottleDep = Annotated[LoginThrottle, Depends(get_login_throttle)]
EnrollRateLimitDep = Annotated[AddressRateLimit, Depends(get_enroll_rate_limit)]
ReleaseMirrorDep = Annotated[ReleaseMirror, Depends(get_release_mirror)]


def poll_desk(app: FastAPI) -> PollDesk:
    """What a poll needs (settings, sessions, waiters, the key rate limit, the caches).

    A plain function rather than a dependency: the poll is the hottest route, and
    FastAPI's solving of its dependencies cost a quarter of its time
    (docs/benchmarks.md). ``get_settings`` overrides are honoured all the same.
    """
    state = app.state
    settings_of = app.dependency_overrides.get(get_settings)
    settings = state.settings if settings_of is None else settings_of()
    return PollDesk(
        settings,
        state.session_factory,
        state.wakeups,
        state.api_key_rate_limit,
        state.poll_cache,
        state.agent_refreshes,
    )


async def get_db(factory: SessionFactoryDep) -> AsyncIterator[Session]:
    """One session per request, closed (rolled back if uncommitted) after the route.

    Async on purpose: sync routes and dependencies each run in a worker thread, and a
    request must never hold a pooled connection while it waits for a free thread, or
    under load every thread ends up waiting for a connection held by a request waiting
    for a thread. So the session is closed here on the event loop (no thread needed),
    and each sync dependency that reads ends its transaction before returning.
    """
    session = factory()
    try:
        yield session
    finally:
        session.close()


DbSession = Annotated[Session, Depends(get_db)]
JsonObject = Annotated[dict[str, Any], Depends(read_json_object)]


def current_api_key(request: Request, db: DbSession, limit: ApiKeyRateLimitDep) -> ApiKey:
    """The caller's API key, checked for validity and for the ``training`` scope."""
    key = extract_api_key(request.headers)
    row = authenticate_api_key(db, key=key, scope="training", now=utcnow())
    db.commit()  # give the connection back before the next thread hop (see get_db)
    require_agent(row, request.headers.get("x-agent-id", "").strip() or None)
    limit.check(row.id)  # 429 RATE_LIMITED; only after the key is known to be valid
    return row


CurrentApiKey = Annotated[ApiKey, Depends(current_api_key)]


def current_user(request: Request, db: DbSession, settings: SettingsDep) -> User:
    """The signed-in user (401 ``UNAUTHENTICATED`` without a live session).

    A cookie-borne session on a state-changing request from another site's page is
    refused (403 ``CROSS_SITE_REQUEST``); a bearer token cannot be sent by another site.
    """
    token = session_token_of(request, public_url=settings.public_url)
    user = authenticate_session(db, token=token, now=utcnow())
    db.commit()  # give the connection back before the next thread hop (see get_db)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def page_user(request: Request, db: DbSession, settings: SettingsDep) -> User | None:
    """The signed-in user, or ``None`` (the page then asks to sign in)."""
    try:
        return current_user(request, db, settings)
    except ApiError as exc:
        if exc.status == 401:
            return None
        raise


PageUser = Annotated[User | None, Depends(page_user)]


@dataclass(frozen=True)
class Principal:
    """Who calls a route open to API keys and signed-in users alike."""

    user_id: str
    api_key: ApiKey | None = None
    """The key used, or ``None`` for a signed-in user."""


def api_key_or_user(
    request: Request, db: DbSession, limit: ApiKeyRateLimitDep, settings: SettingsDep
) -> Principal:
    """The caller by API key (``training`` scope) or by session, whichever it sent."""
    if uses_api_key(request.headers):
        key = current_api_key(request, db, limit)
        return Principal(user_id=key.user_id, api_key=key)
    return Principal(user_id=current_user(request, db, settings).id)


ApiKeyOrUser = Annotated[Principal, Depends(api_key_or_user)]


def job_token(request: Request) -> str:
    """The bearer job token of a reporting call (401 ``MISSING_TOKEN`` without one)."""
    return extract_job_token(request.headers)


JobToken = Annotated[str, Depends(job_token)]


def job_from_token(
    job_id: str, token: JobToken, db: DbSession, limit: JobRateLimitDep
) -> TrainingJob:
    """The job named in the path, provided the bearer token is that job's token."""
    job = authenticate_job(db, job_id=job_id, token=token)
    db.commit()  # give the connection back before the next thread hop (see get_db)
    limit.check(job.id)  # 429 RATE_LIMITED; only after the token is known to be valid
    return job


JobFromToken = Annotated[TrainingJob, Depends(job_from_token)]


def agent_identity(request: Request) -> AgentIdentity:
    """The polling agent's id (checked) and its optional hostname, platform and version."""
    return agent_identity_from_headers(request.headers)


Agent = Annotated[AgentIdentity, Depends(agent_identity)]
