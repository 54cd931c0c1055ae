"""Held long polls in this process, and the signals that wake exactly the ones concerned.

    announce(db, [Signal.job(user_id, requirements)])   in the transaction that changed it
    wakeups.deliver(signal)                              in this process, from any thread
    waiter = wakeups.subscribe(...)                      a long poll's place, until unsubscribe()

A signal says what changed, and so whom it concerns:

- ``job``: a job became available (submitted, re-queued after its lease expired, its
  offer lapsed); wakes one idle waiter of that user whose agent matches the job;
- ``agent``: an agent was revoked, or a job it holds was cancelled; that agent's held
  polls answer now (403 once revoked; else with a job or ``null``, so that the agent
  polls again with its capacity as it now is);
- ``key``: an API key was revoked; the polls held with it answer now (401);
- ``user``: anything else about a user (also a bare user id sent by an older backend);
  wakes all of that user's waiters.

Across processes (several backends on one PostgreSQL database) ``announce`` sends the
signal with ``NOTIFY training_jobs``, which PostgreSQL delivers at commit to every
backend's listener (``services.pg_listener``), which calls ``deliver``; a process skips
its own notifications (``this_process``), since it delivered them itself already.
Neither path is trusted alone: one shared re-check per process (``services.recheck``) looks at the
database once a second for what a lost signal would have said. Nothing here looks at the
database on a waiter's behalf: a waiter that nobody wakes costs nothing.

``deliver`` first tells the listeners (the poll caches, which must forget a revoked key
before its waiter looks again), then wakes waiters on the event loop.
"""

from __future__ import annotations

import asyncio
import enum
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

#: The PostgreSQL notification channel; the payload is an encoded ``Signal``.
CHANNEL = "training_jobs"

Requirements = Mapping[str, Any] | None

_PROCESS_TOKEN = secrets.token_hex(6)


def this_process() -> str:
    """This process's name in the signals it sends (a forked child gets its own)."""
    return f"{_PROCESS_TOKEN}.{os.getpid()}"


class SignalKind(enum.StrEnum):
    """What a signal is about."""

    JOB = "job"  # a job of ``user_id`` became available (with its requirements)
    AGENT = "agent"  # agent ``agent_id`` of ``user_id`` was revoked or lost a job
    KEY = "key"  # API key ``key_id`` (of ``user_id``) was revoked
    USER = "user"  # something else about ``user_id``: wake all its waiters


@dataclass(frozen=True)
class Signal:
    """One change that may end held polls; see the table in the module docstring."""

    kind: SignalKind
    user_id: str
    agent_id: str = ""
    key_id: str = ""
    requirements: dict[str, Any] | None = None
    origin: str = field(default="", compare=False)
    """The process that sent it by ``NOTIFY`` (empty: delivered in-process)."""

    @classmethod
    def job(cls, user_id: str, requirements: Requirements = None) -> Signal:
        """A job of ``user_id`` became available."""
        return cls(SignalKind.JOB, user_id, requirements=_plain(requirements))

    @classmethod
    def agent(cls, user_id: str, agent_id: str) -> Signal:
        """Agent ``agent_id`` was revoked, or a job it holds was cancelled."""
        return cls(SignalKind.AGENT, user_id, agent_id=agent_id)

    @classmethod
    def key(cls, user_id: str, key_id: str) -> Signal:
        """API key ``key_id`` was revoked."""
        return cls(SignalKind.KEY, user_id, key_id=key_id)

    def encode(self) -> str:
        """The NOTIFY payload: compact JSON (PostgreSQL allows up to 8,000 bytes)."""
        data: dict[str, Any] = {"k": self.kind.value, "u": self.user_id}
        if self.agent_id:
            data["a"] = self.agent_id
        if self.key_id:
            data["key"] = self.key_id
        if self.requirements:
            data["r"] = self.requirements
        if self.origin:
            data["o"] = self.origin
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def decode(cls, payload: str) -> Signal | None:
        """The signal of a payload; a bare user id (an older backend) wakes that user."""
        if not payload.startswith("{"):
            return cls(SignalKind.USER, payload) if payload else None
        try:
            data = json.loads(payload)
            kind = SignalKind(data["k"])
            requirements = data.get("r")
            return cls(
                kind,
                str(data["u"]),
                agent_id=str(data.get("a", "")),
                key_id=str(data.get("key", "")),
                requirements=requirements if isinstance(requirements, dict) else None,
                origin=str(data.get("o", "")),
            )
        except (ValueError, KeyError, TypeError):
            return None


def _plain(requirements: Requirements) -> dict[str, Any] | None:
    return dict(requirements) if requirements else None


def announce(db: Session, signals: Iterable[Signal]) -> None:
    """Queue ``signals`` for other backend processes (PostgreSQL only; others have no way).

    Call it inside the transaction that made the change: PostgreSQL sends the
    notifications when that transaction commits, and never if it rolls back.
    """
    if db.get_bind().dialect.name != "postgresql":
        return
    origin = this_process()
    # PostgreSQL folds identical notifications of one transaction into one anyway.
    for payload in sorted({replace(signal, origin=origin).encode() for signal in signals}):
        db.execute(select(func.pg_notify(CHANNEL, payload)))


def announce_jobs(db: Session, *, user_ids: Iterable[str]) -> None:
    """``announce`` a job signal (no requirements) per user."""
    announce(db, [Signal.job(user_id) for user_id in user_ids])


Accepts = Callable[[Requirements], bool]


def _without_requirements(requirements: Requirements) -> bool:
    return not requirements  # what a v1 agent (no X-Agent-Info) may be offered


@dataclass(eq=False)
class Waiter:
    """One held long poll: whose it is, what it can take, and its wake-up."""

    user_id: str
    agent_id: str
    key_id: str = ""
    accepts: Accepts = _without_requirements
    """Whether the agent matches a job with these requirements (``services.matching``);
    by default only jobs without any, as for a v1 agent."""
    event: asyncio.Event = field(default_factory=asyncio.Event)
    since: float = field(default_factory=time.monotonic)
    looking: bool = False
    """Woken and looking: not picked for another job until it waits again."""
    release: bool = False
    """Answer after the next look even without a job (its agent's state changed)."""


class Wakeups:
    """The long polls held in this process, by user; safe to call from any thread.

    ``max_per_key`` caps the polls held at once with one API key (0: no cap):
    ``subscribe`` answers ``None`` beyond it, and the poll is answered at once.
    """

    def __init__(self, *, max_per_key: int = 0) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, dict[Waiter, None]] = {}  # by user, oldest first
        self._per_key: dict[str, int] = {}
        self._max_per_key = max_per_key
        self._loop: asyncio.AbstractEventLoop | None = None
        self.listeners: list[Callable[[Signal], None]] = []
        self.closing = False  # the server is shutting down: held polls answer now

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop the waiters live on (the app's, set at startup)."""
        self._loop = loop

    def subscribe(
        self, user_id: str, *, agent_id: str = "", key_id: str = "", accepts: Accepts | None = None
    ) -> Waiter | None:
        """A new waiter of ``user_id``; ``None`` when ``key_id`` already holds its cap."""
        waiter = Waiter(user_id, agent_id, key_id, accepts or _without_requirements)
        with self._lock:
            if key_id and self._max_per_key and self._per_key.get(key_id, 0) >= self._max_per_key:
                return None
            self._waiters.setdefault(user_id, {})[waiter] = None
            if key_id:
                self._per_key[key_id] = self._per_key.get(key_id, 0) + 1
        return waiter

    def unsubscribe(self, waiter: Waiter) -> None:
        """Forget ``waiter`` (its poll ended)."""
        with self._lock:
            waiters = self._waiters.get(waiter.user_id)
            if waiters is None or waiter not in waiters:
                return
            del waiters[waiter]
            if not waiters:
                del self._waiters[waiter.user_id]
            if waiter.key_id:
                left = self._per_key.get(waiter.key_id, 1) - 1
                if left > 0:
                    self._per_key[waiter.key_id] = left
                else:
                    self._per_key.pop(waiter.key_id, None)

    def waiting(self, user_id: str | None = None) -> int:
        """How many long polls are held (for ``user_id``, or in all)."""
        with self._lock:
            if user_id is not None:
                return len(self._waiters.get(user_id, ()))
            return sum(len(waiters) for waiters in self._waiters.values())

    def users(self) -> set[str]:
        """The users with a held poll."""
        with self._lock:
            return set(self._waiters)

    def held_agents(self, user_id: str) -> set[str]:
        """The agents of ``user_id`` holding a poll in this process right now."""
        with self._lock:
            return {waiter.agent_id for waiter in self._waiters.get(user_id, ())}

    def deliver(self, signal: Signal) -> None:
        """Act on ``signal``: tell the listeners now, wake its waiters on the loop."""
        for listener in self.listeners:
            listener(signal)
        self._on_loop(self._apply, signal)

    def wake(self, user_id: str) -> None:
        """Wake every held poll of ``user_id`` (a ``user`` signal)."""
        self.deliver(Signal(SignalKind.USER, user_id))

    def close(self) -> None:
        """The server is stopping: end every held poll now (signal-handler safe).

        A server waits for its requests before it exits, so a held poll would otherwise
        delay the shutdown by up to its whole hold.
        """
        self.closing = True
        self._on_loop(self._set_all)

    def wake_all(self) -> None:
        """Wake every held poll (after a listener reconnect, when signals were lost)."""
        self._on_loop(self._set_all)

    def _on_loop(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            callback(*args)
        else:
            loop.call_soon_threadsafe(callback, *args)

    def _apply(self, signal: Signal) -> None:
        if signal.kind is SignalKind.JOB:
            self._offer_one(signal.user_id, signal.requirements)
            return
        with self._lock:
            waiters = list(self._waiters.get(signal.user_id, ()))
        for waiter in waiters:
            if _concerns(signal, waiter):
                waiter.release = waiter.release or signal.kind is not SignalKind.USER
                waiter.event.set()

    def _offer_one(self, user_id: str, requirements: Requirements) -> None:
        # One idle waiter that can take the job, the longest-waiting first: the others
        # stay asleep. If only waiters in the middle of a look match, one looks again
        # (its look may have started before the job was there).
        with self._lock:
            waiters = list(self._waiters.get(user_id, ()))
        busy = None
        for waiter in waiters:
            if not waiter.accepts(requirements):
                continue
            if not waiter.looking:
                waiter.looking = True
                waiter.event.set()
                return
            busy = busy or waiter
        if busy is not None:
            busy.event.set()

    def _set_all(self) -> None:
        with self._lock:
            waiters = [w for by_user in self._waiters.values() for w in by_user]
        for waiter in waiters:
            waiter.event.set()


def _concerns(signal: Signal, waiter: Waiter) -> bool:
    if signal.kind is SignalKind.AGENT:
        return waiter.agent_id == signal.agent_id
    if signal.kind is SignalKind.KEY:
        return waiter.key_id == signal.key_id
    return True
