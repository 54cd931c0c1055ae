"""Waking long polls when a user's job may have become available.

    announce_jobs(db, user_ids=[...])   in the transaction that made a job pending
    wakeups.wake(user_id)               in this process, from any thread
    event = wakeups.subscribe(user_id)  a long poll's wake-up, until unsubscribe()

Two paths lead to a waiter. In this process, ``Wakeups.wake`` sets the events of every
long poll of that user. Across processes (several backends on one PostgreSQL database),
``announce_jobs`` sends ``NOTIFY training_jobs, '<user id>'``, which PostgreSQL delivers
at commit to every backend's listener (``services.pg_listener``), which calls ``wake``.
Neither path is trusted alone: waiters also re-check the database about once a second.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

#: The PostgreSQL notification channel; the payload is the user id.
CHANNEL = "training_jobs"


def announce_jobs(db: Session, *, user_ids: Iterable[str]) -> None:
    """Queue a notification per user for other backend processes (PostgreSQL only).

    Call it inside the transaction that makes the job pending: PostgreSQL sends the
    notification when that transaction commits, and never if it rolls back.
    """
    if db.get_bind().dialect.name != "postgresql":
        return
    for user_id in sorted(set(user_ids)):
        db.execute(select(func.pg_notify(CHANNEL, user_id)))


class Wakeups:
    """The long polls waiting in this process, by user; safe to call from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closing = False  # the server is shutting down: held polls answer now

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop the waiters live on (the app's, set at startup)."""
        self._loop = loop

    def subscribe(self, user_id: str) -> asyncio.Event:
        """A new event that is set whenever a job of ``user_id`` may be available."""
        event = asyncio.Event()
        with self._lock:
            self._waiters.setdefault(user_id, set()).add(event)
        return event

    def unsubscribe(self, user_id: str, event: asyncio.Event) -> None:
        """Forget ``event`` (a long poll that ended)."""
        with self._lock:
            events = self._waiters.get(user_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._waiters[user_id]

    def waiting(self, user_id: str | None = None) -> int:
        """How many long polls wait (for ``user_id``, or in all)."""
        with self._lock:
            if user_id is not None:
                return len(self._waiters.get(user_id, ()))
            return sum(len(events) for events in self._waiters.values())

    def wake(self, user_id: str) -> None:
        """Wake every long poll of ``user_id``; callable from worker threads too."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._set(user_id)
        else:
            loop.call_soon_threadsafe(self._set, user_id)

    def close(self) -> None:
        """The server is stopping: end every held long poll now (signal-handler safe).

        A server waits for its requests before it exits, so a held poll would otherwise
        delay the shutdown by up to its whole hold.
        """
        self.closing = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._set_all)

    def _set_all(self) -> None:
        with self._lock:
            users = list(self._waiters)
        for user_id in users:
            self._set(user_id)

    def wake_all(self) -> None:
        """Wake every long poll (after a listener reconnect, when notifications were lost)."""
        with self._lock:
            users = list(self._waiters)
        for user_id in users:
            self.wake(user_id)

    def _set(self, user_id: str) -> None:
        with self._lock:
            events = list(self._waiters.get(user_id, ()))
        for event in events:
            event.set()
