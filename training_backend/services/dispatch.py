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

Most polls need no look at all: the process's caches (``services.poll_cache``) know the
key, the agent's row, and that no job came for this agent since its last look.
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

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from training_backend.db.types import utcnow
from training_backend.errors import ApiError
from training_backend.schemas.jobs import JobDispatch
from training_backend.services.checkin import (
    CheckedIn,
    PollDesk,
    QuickCheckIn,
    record_known_agent,
)
from training_backend.services.claims import reoffer_due, unconfirmed_claim
from training_backend.services.jobs import dataset_of
from training_backend.services.offers import take_offer
from training_backend.services.wakeups import Waiter, Wakeups

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


CheckIn = Callable[[Session], CheckedIn]
"""Authenticates a poll and records its agent in the session given (raising ``ApiError``
when it must be refused): ``services.checkin.full_check_in`` bound to one request."""


@dataclass
class _FirstLook:
    who: CheckedIn
    job: JobDispatch | None
    waiter: Waiter | None  # subscribed when the caller will wait


def offer(db: Session, who: CheckedIn, *, now: datetime) -> tuple[JobDispatch | None, bool]:
    """A job for this agent, reserved for it a few seconds (``services.offers``), else a
    job this agent claimed but whose claim answer it may have lost once
    ``REOFFER_AFTER_S`` has passed (``services.claims``), as the agent receives it; and
    whether the agent holds such an unconfirmed claim at all (its polls then keep looking:
    no signal says when the claim is due again). An agent whose slots are all busy is
    offered nothing."""
    job = None
    if not who.full:
        job = take_offer(
            db, user_id=who.user_id, agent_id=who.agent_id, now=now, accepts=who.accepts
        )
    unconfirmed = None
    if job is None and who.agent_id:
        unconfirmed = unconfirmed_claim(db, user_id=who.user_id, agent_id=who.agent_id)
        if unconfirmed is not None and not who.full and reoffer_due(unconfirmed, now=now):
            job = unconfirmed
    found = None if job is None else JobDispatch.of(job, dataset=dataset_of(db, job))
    return found, unconfirmed is not None


def _subscribe(wakeups: Wakeups, who: CheckedIn) -> Waiter | None:
    return wakeups.subscribe(
        who.user_id, agent_id=who.agent_id, key_id=who.key_id, accepts=who.accepts
    )


def _look(desk: PollDesk, db: Session, who: CheckedIn) -> JobDispatch | None:
    # The version is read before the look: a job signalled during it is never hidden.
    version = desk.cache.version(who.user_id)
    if desk.cache.is_idle(who.user_id, who.agent_id, who.fingerprint):
        return None  # nothing became available for it since its last look
    job, unconfirmed = offer(db, who, now=utcnow())
    if job is None and not unconfirmed:
        desk.cache.remember_idle(who.user_id, who.agent_id, who.fingerprint, version)
    return job


def _first_look(desk: PollDesk, check_in: CheckIn, hold: bool) -> _FirstLook:
    with desk.sessions() as db:
        who = check_in(db)
        # Subscribe before looking, so a job submitted right after the look still wakes us.
        waiter = _subscribe(desk.wakeups, who) if hold else None
        if waiter is not None:
            waiter.looking = True
        try:
            job = _look(desk, db, who)
        except BaseException:
            if waiter is not None:
                desk.wakeups.unsubscribe(waiter)
            raise
    return _FirstLook(who, job, waiter)


def _look_again(desk: PollDesk, check_in: CheckIn) -> JobDispatch | None:
    with desk.sessions() as db:
        who = check_in(db)  # a key or agent revoked meanwhile is refused here
        return _look(desk, db, who)


async def _hold(
    desk: PollDesk, waiter: Waiter, wait_s: float, check_in: CheckIn
) -> JobDispatch | None:
    try:
        return await wait_for_job(
            waiter,
            wait_s=wait_s,
            look=lambda: run_in_threadpool(_look_again, desk, check_in),
            closing=lambda: desk.wakeups.closing,
        )
    finally:
        desk.wakeups.unsubscribe(waiter)


def _idle_waiter(desk: PollDesk, who: CheckedIn, wait_s: float) -> Waiter | bool | None:
    """For a poll the caches checked in: ``False`` when a look is needed; else the waiter
    to hold (``None``: nothing to hold, answer ``null`` now)."""
    version = desk.cache.version(who.user_id)
    if not desk.cache.is_idle(who.user_id, who.agent_id, who.fingerprint):
        return False
    if wait_s <= 0:
        return None
    waiter = _subscribe(desk.wakeups, who)
    if waiter is None or desk.cache.version(who.user_id) == version:
        return waiter
    desk.wakeups.unsubscribe(waiter)  # a job came between the check and the subscription
    return False


def idle_now(desk: PollDesk, quick: QuickCheckIn) -> bool:
    """True when a poll the caches checked in can be answered "no job" as it stands: its
    agent's row needs no write and nothing became available for it since its last look."""
    who = quick.who
    return not quick.must_record and desk.cache.is_idle(who.user_id, who.agent_id, who.fingerprint)


async def poll_for_job(
    *,
    desk: PollDesk,
    wait_s: float,
    check_in: CheckIn,
    quick: QuickCheckIn | None = None,
    now: Callable[[], datetime] = utcnow,
) -> JobDispatch | None:
    """One poll: check in, then the job on offer; with ``wait_s`` > 0 and none there yet,
    the job that turns up within ``wait_s`` (``None`` if none does).

    ``quick`` is the check-in the caches could make: with it, and with no job for this
    agent since its last look, the poll touches no database at all (and when the agent's
    row is due its periodic write, that write is all it does). A key already holding
    ``max_long_polls_per_key`` polls gets a plain poll's answer.
    """
    first_check_in = check_in
    if quick is not None:
        if not quick.must_record:
            idle = _idle_waiter(desk, quick.who, wait_s)
            if idle is None:
                return None
            if isinstance(idle, Waiter):
                return await _hold(desk, idle, wait_s, check_in)

        def first_check_in(db: Session) -> CheckedIn:
            if quick.must_record:
                record_known_agent(db, desk, quick, now=now())
            return quick.who

    first = await run_in_threadpool(_first_look, desk, first_check_in, wait_s > 0)
    waiter = first.waiter
    if first.job is not None or waiter is None:
        if waiter is not None:
            desk.wakeups.unsubscribe(waiter)
        return first.job
    return await _hold(desk, waiter, wait_s, check_in)
