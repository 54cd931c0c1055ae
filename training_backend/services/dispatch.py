"""Polls: record the agent, offer it a job, and for a long poll hold the poll until a job
it can take turns up or the wait ends.

A held poll is a ``Waiter`` (``services.wakeups``) and costs nothing while it waits: no
timer of its own, no database look. It wakes when a signal concerns it (a job it can
take became available, its agent or key was revoked, a job of its agent was cancelled),
whether the signal came from this process, from another one by PostgreSQL ``NOTIFY``, or
from this process's one shared re-check (``services.recheck``), which covers lost
signals once a second whatever the number of waiters. Each look opens and closes its own
session in a worker thread (``run_in_threadpool``): the poll route is async, and must
hold neither a worker thread nor a connection for up to 30 s (see ``routing.py``).
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

from training_backend.db.types import utcnow
from training_backend.errors import ApiError
from training_backend.schemas.jobs import JobDispatch
from training_backend.services.agent_versions import require_supported
from training_backend.services.agents import AgentIdentity, poll_coalesce, record_poll
from training_backend.services.claims import unconfirmed_claim
from training_backend.services.jobs import dataset_of, next_pending_job
from training_backend.services.wakeups import Accepts, Waiter, Wakeups
from training_backend.settings import BackendSettings

#: The longest a poll is held (``wait_seconds`` above it is clamped).
MAX_WAIT_SECONDS = 30.0

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
    waiter: Waiter,
    *,
    wait_s: float,
    look: Callable[[], Awaitable[T | None]],
    clock: Callable[[], float] = time.monotonic,
    closing: Callable[[], bool] = lambda: False,
) -> T | None:
    """What ``look`` finds once ``waiter`` is woken, or ``None`` once ``wait_s`` passed
    (or at once when ``closing()`` turns true: the server is shutting down).

    ``look`` may raise (an ``ApiError`` for a key or agent revoked meanwhile): the poll
    then answers that error.
    """
    deadline = clock() + wait_s
    while (remaining := deadline - clock()) > 0:
        waiter.looking = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter.event.wait(), timeout=remaining)
        waiter.looking = True
        if not waiter.event.is_set():
            return None  # the hold is over
        waiter.event.clear()  # a signal during the look sets it again: one more look
        if closing():
            return None
        found = await look()
        if found is not None or waiter.release:
            return found
    return None


@dataclass(frozen=True)
class CheckedIn:
    """Who polls, once authenticated and recorded: what a waiter needs to know."""

    user_id: str
    agent_id: str
    key_id: str = ""
    accepts: Accepts | None = None


CheckIn = Callable[[Session], CheckedIn]
"""Authenticates a poll and records its agent in the session given (raising ``ApiError``
when it must be refused); says whose jobs the agent is offered."""


@dataclass
class _FirstLook:
    who: CheckedIn
    job: JobDispatch | None
    waiter: Waiter | None  # subscribed when the caller will wait


def offer(db: Session, *, who: CheckedIn) -> JobDispatch | None:
    """The user's oldest pending job as an agent receives it, else a job this agent
    claimed but whose claim answer it may have lost (``services.claims``), or ``None``."""
    job = next_pending_job(db, user_id=who.user_id)
    if job is None and who.agent_id:
        job = unconfirmed_claim(db, user_id=who.user_id, agent_id=who.agent_id, now=utcnow())
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
        who = check_in(db)
        # Subscribe before looking, so a job submitted right after the look still wakes us.
        waiter = None
        if wakeups is not None:
            waiter = wakeups.subscribe(
                who.user_id, agent_id=who.agent_id, key_id=who.key_id, accepts=who.accepts
            )
            if waiter is not None:
                waiter.looking = True
        try:
            job = offer(db, who=who)
        except BaseException:
            if waiter is not None and wakeups is not None:
                wakeups.unsubscribe(waiter)
            raise
    return _FirstLook(who, job, waiter)


def _look_again(sessions: sessionmaker[Session], check_in: CheckIn) -> JobDispatch | None:
    with sessions() as db:
        who = check_in(db)  # a key or agent revoked meanwhile is refused here
        return offer(db, who=who)


async def poll_for_job(
    *, sessions: sessionmaker[Session], wakeups: Wakeups, wait_s: float, check_in: CheckIn
) -> JobDispatch | None:
    """One poll: check in, then the job on offer; with ``wait_s`` > 0 and none there yet,
    the job that turns up within ``wait_s`` (``None`` if none does).

    A key already holding ``max_long_polls_per_key`` polls gets a plain poll's answer.
    """
    first = await run_in_threadpool(
        _first_look, sessions, check_in, wakeups if wait_s > 0 else None
    )
    waiter = first.waiter
    if first.job is not None or waiter is None:
        if waiter is not None:
            wakeups.unsubscribe(waiter)
        return first.job
    try:
        return await wait_for_job(
            waiter,
            wait_s=wait_s,
            look=lambda: run_in_threadpool(_look_again, sessions, check_in),
            closing=lambda: wakeups.closing,
        )
    finally:
        wakeups.unsubscribe(waiter)
