"""Last-seen refreshes of known agents, written together about once a second.

    refreshes.queue(user_id, agent_id, last_poll_at=..., connected_until=...)
    await refreshes.run(sessions)      the app's background task; ``flush`` at shutdown

Most of an agent's row writes say only "still here": a ``last_poll_at`` that got old, a
``connected_until`` about to lapse, nothing else changed. Written one by one, each
costs a worker thread, a pooled connection and a transaction (on SQLite the one write
lock) at the moment the poll arrives: with thousands of long-polling agents that was
most of what the backend did (docs/benchmarks.md). Queued here instead, they are
written by one ``UPDATE`` statement run over all of them (``executemany``) in one
transaction about once a second, and the poll itself never leaves the event loop.

What still goes straight to the database (``services.checkin``): a new agent's row, a
header that changed (labels, GPUs, version...), an agent that was offline. A refresh
never brings a row back: it updates only a row that exists and is not revoked, so a
revocation or a forgotten agent wins over a refresh queued before it. Nothing else
reads ``last_poll_at`` or ``connected_until`` within the second they lag (the page and
"online" allow a minute).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from training_backend.db.models import TrainingAgent

logger = logging.getLogger(__name__)

#: Seconds between two writes of the queued refreshes.
FLUSH_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class _Refresh:
    last_poll_at: datetime
    connected_until: datetime | None


class AgentRefreshes:
    """The refreshes queued in this process, one per agent (the latest wins)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], _Refresh] = {}
        self.written = 0
        """Refreshes written so far (for tests and benchmarks)."""

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def queue(
        self,
        user_id: str,
        agent_id: str,
        *,
        last_poll_at: datetime,
        connected_until: datetime | None,
    ) -> None:
        """Note that the agent polled at ``last_poll_at`` (holding it connected until
        ``connected_until``); merged with a refresh already queued for it."""
        with self._lock:
            before = self._pending.get((user_id, agent_id))
            if before is not None:
                last_poll_at = max(last_poll_at, before.last_poll_at)
                if connected_until is None or (
                    before.connected_until is not None and before.connected_until > connected_until
                ):
                    connected_until = before.connected_until
            self._pending[(user_id, agent_id)] = _Refresh(last_poll_at, connected_until)

    def _take(self) -> dict[tuple[str, str], _Refresh]:
        with self._lock:
            taken, self._pending = self._pending, {}
            return taken

    def write(self, sessions: sessionmaker[Session]) -> int:
        """Write every queued refresh now, in one transaction; how many were queued.

        On a database error the refreshes are queued again (unless a newer one came
        meanwhile) and the error propagates.
        """
        taken = self._take()
        if not taken:
            return 0
        table = cast(Table, TrainingAgent.__table__)
        columns = table.c
        statement = (
            update(table)
            .where(columns.user_id == bindparam("b_user"))
            .where(columns.agent_id == bindparam("b_agent"))
            .where(columns.revoked_at.is_(None))
            .values(
                status="online",
                last_poll_at=bindparam("b_seen", type_=columns.last_poll_at.type),
                connected_until=bindparam("b_until", type_=columns.connected_until.type),
            )
        )
        rows = [
            {
                "b_user": user_id,
                "b_agent": agent_id,
                "b_seen": refresh.last_poll_at,
                "b_until": refresh.connected_until,
            }
            for (user_id, agent_id), refresh in taken.items()
        ]
        try:
            with sessions() as db:
                db.execute(statement, rows)
                db.commit()
        except BaseException:
            for (user_id, agent_id), refresh in taken.items():
                self.queue(
                    user_id,
                    agent_id,
                    last_poll_at=refresh.last_poll_at,
                    connected_until=refresh.connected_until,
                )
            raise
        self.written += len(rows)
        return len(rows)

    async def run(self, sessions: sessionmaker[Session], interval_s: float = FLUSH_SECONDS) -> None:
        """Write the queued refreshes every ``interval_s`` until cancelled (the app then
        calls ``flush`` once more)."""
        while True:
            await asyncio.sleep(interval_s)
            await self.flush(sessions)

    async def flush(self, sessions: sessionmaker[Session]) -> None:
        """Write what is queued, in a worker thread; a database error is logged (the
        refreshes wait for the next flush), never raised."""
        if not len(self):
            return
        try:
            await run_in_threadpool(self.write, sessions)
        except SQLAlchemyError as exc:
            logger.warning("agents' last-seen times not written yet (will retry): %s", exc)
