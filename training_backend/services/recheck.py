"""The one shared re-check per backend process: what a lost signal would have said.

Signals (``services.wakeups``) reach held polls within milliseconds, but a notification
can be lost (the listener reconnecting), and on SQLite another process (the CLI, a second
``serve`` by hand) has no way to send one. So once a second, while this process holds a
poll or its poll caches remember anything, one pass asks the database three small
indexed questions about the time since its last pass (minus ``MARGIN``, for
transactions that committed late):

- which pending jobs became available (submitted, re-queued, or their offer lapsed);
- which API keys were revoked;
- which agents were revoked;

and delivers the matching signals to this process's waiters and caches. Its cost
depends on how much changed, never on how many polls are held.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from training_backend.db.models import ApiKey, TrainingAgent, TrainingJob
from training_backend.db.types import utcnow
from training_backend.job_status import JobStatus
from training_backend.services.wakeups import Signal, Wakeups

log = logging.getLogger(__name__)

#: How often the pass runs while a poll is held (a lost signal costs at most this).
RECHECK_SECONDS = 1.0
#: How far back each pass looks besides the time since the last one.
MARGIN = timedelta(seconds=5)
#: Rows read per question per pass at most (the next pass reads the rest).
SCAN_LIMIT = 1000


def changes_since(db: Session, *, since: datetime, now: datetime) -> list[Signal]:
    """The signals for what changed in ``(since, now]``: jobs on offer, revocations."""
    jobs = db.execute(
        select(TrainingJob.user_id, TrainingJob.requirements)
        .where(TrainingJob.status == JobStatus.PENDING.value, TrainingJob.agent_id.is_(None))
        .where(TrainingJob.available_at > since, TrainingJob.available_at <= now)
        .order_by(TrainingJob.available_at)
        .limit(SCAN_LIMIT)
    )
    signals = [Signal.job(user_id, requirements) for user_id, requirements in jobs]
    keys = db.execute(
        select(ApiKey.user_id, ApiKey.id).where(ApiKey.revoked_at > since).limit(SCAN_LIMIT)
    )
    signals += [Signal.key(user_id, key_id) for user_id, key_id in keys]
    agents = db.execute(
        select(TrainingAgent.user_id, TrainingAgent.agent_id)
        .where(TrainingAgent.revoked_at > since)
        .limit(SCAN_LIMIT)
    )
    signals += [Signal.agent(user_id, agent_id) for user_id, agent_id in agents]
    return signals


class Recheck:
    """The pass, once every ``interval_s`` while ``wanted()`` (default: a poll is held);
    ``on_pass`` runs after each pass (the caches drop expired entries)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        wakeups: Wakeups,
        *,
        wanted: Callable[[], bool] | None = None,
        on_pass: Callable[[], None] = lambda: None,
        interval_s: float | None = None,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._sessions = sessions
        self._wakeups = wakeups
        self._wanted = wanted or (lambda: wakeups.waiting() > 0)
        self._on_pass = on_pass
        self._interval_s = interval_s
        self._clock = clock
        self._sleep = sleep
        self._last: datetime | None = None
        self.passes = 0

    @property
    def interval_s(self) -> float:
        """Seconds between passes (``RECHECK_SECONDS`` unless given)."""
        return RECHECK_SECONDS if self._interval_s is None else self._interval_s

    def _scan(self, since: datetime, now: datetime) -> list[Signal]:
        with self._sessions() as db:
            return changes_since(db, since=since, now=now)

    async def run_once(self) -> list[Signal]:
        """One pass: the signals it delivered (to this process's waiters and caches)."""
        now = self._clock()
        last = self._last
        # After an idle spell nobody was waiting, so nothing older can matter: a poll
        # that arrived meanwhile made its own first look.
        if last is None or now - last > timedelta(seconds=2 * self.interval_s):
            last = now - timedelta(seconds=self.interval_s)
        signals = await run_in_threadpool(self._scan, last - MARGIN, now)
        self._last = now
        self.passes += 1
        for signal in signals:
            self._wakeups.deliver(signal)
        self._on_pass()
        return signals

    async def run(self) -> None:
        """Pass after pass until cancelled; a failed pass is logged and the next one runs."""
        while True:
            if self._wanted():
                one_pass = asyncio.ensure_future(self.run_once())
                try:
                    # Shielded: a shutdown lets a pass in a worker thread finish rather
                    # than leave its connection to an engine being disposed.
                    await asyncio.shield(one_pass)
                except asyncio.CancelledError:
                    await asyncio.gather(one_pass, return_exceptions=True)
                    raise
                except Exception:
                    log.exception("re-check of jobs and revocations failed; trying again")
            await self._sleep(self.interval_s)
