"""Polls: record the agent, offer its user's oldest pending job, and for a long poll hold
the poll until such a job turns up or the wait ends.

A waiter wakes on its event (``services.wakeups``: a job submitted or requeued in this
process, or a PostgreSQL notification from another) and in any case about once a
second, when it looks at the database again: a lost wake-up costs a second, never a
whole hold. It holds no database connection while it waits; each look opens and closes
its own session in a worker thread (``run_in_threadpool``): the poll route is async, and
must hold neither a worker thread nor a connection for up to 30 s (see ``routing.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from training_backend.errors import ApiError
from training_backend.schemas.jobs import JobDispatch
from training_backend.services.agent_versions import require_supported
from training_backend.services.agents import AgentIdentity, poll_coalesce, record_poll
from training_backend.services.jobs import dataset_of, next_pending_job
from training_backend.services.wakeups import Wakeups
from training_backend.settings import BackendSettings

#: The longest a poll is held (``wait_seconds`` above it is clamped).
MAX_WAIT_SECONDS = 30.0
#: How often a waiter looks at the database even without a wake-up.
RECHECK_SECONDS = 1.0

T = TypeVar("T")


def clamp_wait(wait_seconds: float | None) -> float:
    """The hold for a requested ``wait_seconds``: 0 (a plain poll) up to ``MAX_WAIT_SECONDS``."""
    if wait_seconds is None:
        return 0.0
    if not math.isfinite(wait_seconds):
        message = "Invalid request: wait_seconds must be a number of seconds up to 30"
        raise ApiError(400, "INVALID_REQUEST", message)
    return min(max(wait_seconds, 0.0), MAX_WAIT_SECONDS)


async def wait_for_job(
    event: asyncio.Event,
    *,
    wait_s: float,
    peek: Callable[[], Awaitable[T | None]],
    recheck_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    closing: Callable[[], bool] = lambda: False,
) -> T | None:
    """What ``peek`` finds after a wake-up or a recheck, or ``None`` once ``wait_s`` passed
    (or at once when ``closing()`` turns true: the server is shutting down).

    ``recheck_s`` defaults to ``RECHECK_SECONDS`` (read at call time).
    """
    recheck_s = RECHECK_SECONDS if recheck_s is None else recheck_s
    deadline = clock() + wait_s
    while (remaining := deadline - clock()) > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=min(recheck_s, remaining))
        event.clear()
        if closing():
            return None
        found = await peek()
        if found is not None:
            return found
    return None


CheckIn = Callable[[Session], str]
"""Authenticates a poll and records its agent in the session given; returns the id of the
user whose jobs the agent is offered."""


@dataclass
class _FirstLook:
    user_id: str
    job: JobDispatch | None
    event: asyncio.Event | None  # subscribed when the caller will wait


def offer(db: Session, *, user_id: str) -> JobDispatch | None:
    """The user's oldest pending job as an agent receives it, or ``None``."""
    job = next_pending_job(db, user_id=user_id)
    return None if job is None else JobDispatch.of(job, dataset=dataset_of(db, job))


def require_supported_agent(
    agent: AgentIdentity, *, settings: BackendSettings, backend_url: str
) -> None:
    """426 ``AGENT_UPGRADE_REQUIRED`` for an agent older than ``min_agent_version``."""
    require_supported(
        agent.version,
        minimum=settings.min_agent_version,
        backend_url=backend_url,
        platform=agent.platform,
    )


def check_in_agent(
    db: Session,
    *,
    user_id: str,
    agent: AgentIdentity,
    settings: BackendSettings,
    backend_url: str,
    now: datetime,
) -> None:
    """Record that ``agent`` polled, once it is known to be new enough (426 otherwise,
    before anything is recorded)."""
    require_supported_agent(agent, settings=settings, backend_url=backend_url)
    coalesce = poll_coalesce(settings.online_threshold_seconds)
    record_poll(db, user_id=user_id, agent=agent, now=now, coalesce=coalesce)


def _first_look(
    sessions: sessionmaker[Session], check_in: CheckIn, wakeups: Wakeups | None
) -> _FirstLook:
    with sessions() as db:
        user_id = check_in(db)
        # Subscribe before looking, so a job submitted right after the look still wakes us.
        event = None if wakeups is None else wakeups.subscribe(user_id)
        try:
            job = offer(db, user_id=user_id)
        except BaseException:
            if event is not None and wakeups is not None:
                wakeups.unsubscribe(user_id, event)
            raise
    return _FirstLook(user_id, job, event)


def _look_again(sessions: sessionmaker[Session], user_id: str) -> JobDispatch | None:
    with sessions() as db:
        return offer(db, user_id=user_id)


async def poll_for_job(
    *, sessions: sessionmaker[Session], wakeups: Wakeups, wait_s: float, check_in: CheckIn
) -> JobDispatch | None:
    """One poll: check in, then the job on offer; with ``wait_s`` > 0 and none there yet,
    the job that turns up within ``wait_s`` (``None`` if none does)."""
    first = await run_in_threadpool(
        _first_look, sessions, check_in, wakeups if wait_s > 0 else None
    )
    if first.job is not None or first.event is None:
        if first.event is not None:
            wakeups.unsubscribe(first.user_id, first.event)
        return first.job
    try:
        return await wait_for_job(
            first.event,
            wait_s=wait_s,
            peek=lambda: run_in_threadpool(_look_again, sessions, first.user_id),
            closing=lambda: wakeups.closing,
        )
    finally:
        wakeups.unsubscribe(first.user_id, first.event)
