"""The app factory: ``create_app(settings)`` for ``serve``, the tests and embedding."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from training_backend import __version__
from training_backend.background import background_tasks
from training_backend.db import create_db_engine, create_session_factory, upgrade_database
from training_backend.errors import install_error_handlers
from training_backend.quick_polls import QuickPolls
from training_backend.ratelimit import (
    AddressRateLimit,
    ApiKeyRateLimit,
    JobRateLimit,
    LoginThrottle,
)
from training_backend.routers import (
    agent_protocol,
    agents,
    api_keys,
    artifacts,
    auth,
    downloads,
    enroll,
    enrollments,
    health,
    job_reporting,
    jobs,
    pages,
)
from training_backend.services.agent_refreshes import AgentRefreshes
from training_backend.services.agent_updates import UpdateOffers
from training_backend.services.artifact_store import open_store
from training_backend.services.chunk_buffers import ChunkBuffers
from training_backend.services.poll_cache import PollCache
from training_backend.services.release_mirror import ReleaseMirror
from training_backend.services.shared_limits import DatabaseBuckets
from training_backend.services.upload_hashes import UploadHashes
from training_backend.services.wakeups import Wakeups
from training_backend.settings import BackendSettings
from training_backend.templating import STATIC_DIR, StrictTransportSecurity


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: BackendSettings = app.state.settings
    engine = create_db_engine(settings.database_url)
    try:
        await run_in_threadpool(upgrade_database, engine)
        app.state.session_factory = create_session_factory(engine)
        if app.state.shared_buckets is not None:
            app.state.shared_buckets.open(settings.database_url)
        async with background_tasks(app):
            yield
    finally:
        if app.state.shared_buckets is not None:
            app.state.shared_buckets.close()
        engine.dispose()


def create_app(settings: BackendSettings | None = None) -> FastAPI:
    """A backend app on ``settings`` (default: from the environment).

    The database is opened and migrated when the app starts (its lifespan), not here, so
    creating an app is cheap and never touches the disk.
    """
    settings = settings or BackendSettings()
    docs = settings.api_docs  # off unless asked for: no public map of the API
    app = FastAPI(
        title="training-backend",
        version=__version__,
        lifespan=_lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.settings = settings
    # On PostgreSQL in the database, shared by every process on it; on SQLite (one
    # process) in memory (see ratelimit.py). Tests replace them to drive the clock.
    shared = settings.database_url.startswith("postgresql")
    app.state.shared_buckets = store = DatabaseBuckets() if shared else None
    app.state.api_key_rate_limit = ApiKeyRateLimit(
        per_minute=settings.rate_limit_per_minute, burst=settings.rate_limit_burst, store=store
    )
    app.state.login_throttle = LoginThrottle(store=store)
    app.state.enroll_rate_limit = AddressRateLimit(store=store)
    app.state.job_rate_limit = JobRateLimit(
        per_minute=settings.job_rate_limit_per_minute,
        burst=settings.job_rate_limit_burst,
        store=store,
    )
    # Long polls held in this process.
    app.state.wakeups = Wakeups(max_per_key=settings.max_long_polls_per_key)
    # What polls keep asking the database; it hears every signal the waiters hear.
    app.state.poll_cache = PollCache()
    app.state.wakeups.listeners.append(app.state.poll_cache.apply)
    # Agents' "still here" row writes, made together about once a second.
    app.state.agent_refreshes = AgentRefreshes()
    app.state.artifact_store = open_store(settings)  # opens no connection and no file yet
    app.state.upload_hashes = UploadHashes()
    app.state.chunk_buffers = ChunkBuffers(settings.artifact_max_chunk_bytes)
    app.state.release_mirror = mirror = ReleaseMirror()  # releases fetched from releases_url
    app.state.update_offers = UpdateOffers(mirror)  # agent_update in poll answers
    install_error_handlers(app)
    app.add_middleware(QuickPolls, owner=app)  # inside: the HSTS header still applies
    app.add_middleware(StrictTransportSecurity, always=settings.cookie_secure)
    routers = (health, agent_protocol, job_reporting, jobs, auth, agents, api_keys, downloads)
    for module in (*routers, pages):
        app.include_router(module.router)
    for module in (enroll, enrollments, artifacts):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
