"""The backend's background chores: expire leases often, forget long-gone agents rarely.

    housekeeping_step(db, now=..., forget_agents=..., retention=...)   one pass (tests)
    Housekeeping(factory, settings, wakeups).run()                     the loop (the app)

The loop runs in the app's lifespan. Time and sleep are injected, so tests drive it
without waiting. A failed pass is logged and the next one runs as usual: a database
that is away for a minute must not end the chores for good. With several backend
processes on one database each runs the loop; every change is a compare-and-set, so a
lease is never taken back twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from training_backend.db.types import utcnow
from training_backend.services import agents
from training_backend.services.leases import ExpiredLeases, expire_leases
from training_backend.services.shared_limits import forget_idle_buckets
from training_backend.services.wakeups import Wakeups
from training_backend.settings import BackendSettings

log = logging.getLogger(__name__)

#: How often agents unseen for ``agent_retention_days`` are looked for.
FORGET_AGENTS_EVERY = timedelta(minutes=5)


@dataclass(frozen=True)
class HousekeepingReport:
    """What one pass did."""

    leases: ExpiredLeases
    agents_forgotten: int | None  # None: not looked for in this pass


def retention_of(settings: BackendSettings) -> timedelta:
    """How long an agent that stopped polling is kept (``agent_retention_days``)."""
    return timedelta(days=settings.agent_retention_days)


def housekeeping_step(
    db: Session, *, now: datetime, forget_agents: bool, retention: timedelta
) -> HousekeepingReport:
    """One pass: take back expired leases, and (if asked) forget stale agents and the
    rate-limit buckets that have been idle long enough to be full again."""
    leases = expire_leases(db, now=now)
    forgotten = None
    if forget_agents:
        forgotten = agents.forget_stale_agents(db, now=now, retention=retention)
        forget_idle_buckets(db, now=now.timestamp())
        db.commit()
    return HousekeepingReport(leases=leases, agents_forgotten=forgotten)


class Housekeeping:
    """The loop around ``housekeeping_step``; ``run`` until cancelled."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: BackendSettings,
        wakeups: Wakeups,
        *,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._factory = session_factory
        self._settings = settings
        self._wakeups = wakeups
        self._clock = clock
        self._sleep = sleep
        self._agents_checked_at: datetime | None = None

    def _step_in_session(self, now: datetime, forget_agents: bool) -> HousekeepingReport:
        with self._factory() as db:
            return housekeeping_step(
                db, now=now, forget_agents=forget_agents, retention=retention_of(self._settings)
            )

    async def run_once(self) -> HousekeepingReport:
        """One pass in a worker thread; wakes the long polls of users with requeued jobs."""
        now = self._clock()
        last = self._agents_checked_at
        forget = last is None or now - last >= FORGET_AGENTS_EVERY
        report = await run_in_threadpool(self._step_in_session, now, forget)
        if forget:
            self._agents_checked_at = now
        for signal in report.leases.signals:
            self._wakeups.deliver(signal)
        if report.leases.total:
            log.info(
                "leases expired: %d requeued, %d failed, %d cancelled",
                len(report.leases.requeued),
                len(report.leases.failed),
                len(report.leases.cancelled),
            )
        if report.agents_forgotten:
            log.info("forgot %d agents unseen for the retention period", report.agents_forgotten)
        return report

    async def run(self) -> None:
        """Pass after pass, ``housekeeping_interval_seconds`` apart, until cancelled."""
        while True:
            one_pass = asyncio.ensure_future(self.run_once())
            try:
                # Shielded: cancelling (the app's shutdown) lets a pass in a worker thread
                # finish, rather than leave its connection to an engine being disposed.
                await asyncio.shield(one_pass)
            except asyncio.CancelledError:
                await asyncio.gather(one_pass, return_exceptions=True)
                raise
            except Exception:
                log.exception("housekeeping pass failed; trying again at the next one")
            await self._sleep(self._settings.housekeeping_interval_seconds)
