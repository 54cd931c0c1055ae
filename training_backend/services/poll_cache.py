"""What polls keep asking the database, remembered in this process: the key, the agent's
row, and "no job for this agent". A poll that finds all three here touches no database.

    cache.key(key_hash)                    a valid key as last read (``CachedKey``)
    cache.agent(user_id, agent_id)         the agent's row as its polls left it
    cache.is_idle(user_id, agent_id, fp)   no job was on offer for it, and none came since

Nothing here may outlive the change that makes it wrong. The cache listens to every
signal (``Wakeups.listeners``): a revoked key or agent is forgotten as the revocation is
delivered (in this process at once, from another by ``NOTIFY`` within milliseconds, and
by the shared re-check within a second when no notification could come: SQLite); a job
that becomes available bumps its user's version, which ends every "no job" of that user.
An idle entry is stored with the version read *before* the look that found nothing, so
a job signalled during the look is never hidden. Entries also expire (``*_TTL_S``), which
bounds what a lost change could cost, and keeps ``last_used_at`` roughly fresh.

Only good news is kept: a revoked key or agent is not cached, so it always meets the
database (and its refusal) again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from training_backend.db.models import ApiKey
from training_backend.services.agents import AgentSeen
from training_backend.services.wakeups import Signal, SignalKind

#: How long an entry is trusted without the database. Changes reach the caches as
#: signals (and the shared re-check), so this only bounds what a lost one could cost; it
#: is longer than two 30 s holds, so an agent that long-polls back to back meets the
#: database about once every fourth hold, not at every one (docs/benchmarks.md).
KEY_TTL_S = 120.0
AGENT_TTL_S = 120.0
IDLE_TTL_S = 120.0
#: Entries of one kind kept at most; beyond it expired ones go, then the oldest half.
MAX_ENTRIES = 200_000

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class CachedKey:
    """An API key as authentication needs it (the fields ``require_*`` read)."""

    id: str
    user_id: str
    scopes: tuple[str, ...]
    agent_id: str | None

    @classmethod
    def of(cls, row: ApiKey) -> CachedKey:
        """The cached view of a valid key's row."""
        return cls(row.id, row.user_id, tuple(row.scopes), row.agent_id)


@dataclass(frozen=True)
class _Idle:
    fingerprint: str
    version: int
    expires: float


class PollCache:
    """The three memories, safe to use from the event loop and worker threads alike."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[CachedKey, float]] = {}  # by key hash
        self._agents: dict[tuple[str, str], tuple[AgentSeen, float]] = {}
        self._idle: dict[tuple[str, str], _Idle] = {}
        self._versions: dict[str, int] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys) + len(self._agents) + len(self._idle)

    def key(self, key_hash: str) -> CachedKey | None:
        """The valid key with this hash, if remembered and fresh."""
        with self._lock:
            found = self._keys.get(key_hash)
            if found is None or found[1] <= self._clock():
                return None
            return found[0]

    def remember_key(self, key_hash: str, row: ApiKey) -> None:
        """Remember a key just found valid in the database."""
        with self._lock:
            _bounded(self._keys, self._clock())
            self._keys[key_hash] = (CachedKey.of(row), self._clock() + KEY_TTL_S)

    def agent(self, user_id: str, agent_id: str) -> AgentSeen | None:
        """The agent's row as this process last read or wrote it, if fresh."""
        with self._lock:
            found = self._agents.get((user_id, agent_id))
            if found is None or found[1] <= self._clock():
                return None
            return found[0]

    def remember_agent(self, user_id: str, agent_id: str, seen: AgentSeen | None) -> None:
        """Remember an agent's row (``None``: forget it)."""
        with self._lock:
            if seen is None:
                self._agents.pop((user_id, agent_id), None)
                return
            _bounded(self._agents, self._clock())
            self._agents[(user_id, agent_id)] = (seen, self._clock() + AGENT_TTL_S)

    def version(self, user_id: str) -> int:
        """How many times jobs of ``user_id`` became available, as this process heard."""
        with self._lock:
            return self._versions.get(user_id, 0)

    def is_idle(self, user_id: str, agent_id: str, fingerprint: str) -> bool:
        """True when a look found no job for this agent (same info) and none came since."""
        with self._lock:
            idle = self._idle.get((user_id, agent_id))
            return (
                idle is not None
                and idle.fingerprint == fingerprint
                and idle.version == self._versions.get(user_id, 0)
                and idle.expires > self._clock()
            )

    def remember_idle(self, user_id: str, agent_id: str, fingerprint: str, version: int) -> None:
        """A look that began at ``version`` found no job for this agent."""
        with self._lock:
            if version != self._versions.get(user_id, 0):
                return  # a job became available during the look
            if len(self._idle) >= MAX_ENTRIES:
                self._sweep_idle()
            self._idle[(user_id, agent_id)] = _Idle(
                fingerprint, version, self._clock() + IDLE_TTL_S
            )

    def apply(self, signal: Signal) -> None:
        """Forget what ``signal`` makes wrong (a ``Wakeups`` listener)."""
        with self._lock:
            if signal.kind in (SignalKind.JOB, SignalKind.USER):
                self._versions[signal.user_id] = self._versions.get(signal.user_id, 0) + 1
            if signal.kind is SignalKind.KEY:
                gone = [h for h, (key, _) in self._keys.items() if key.id == signal.key_id]
            elif signal.kind is SignalKind.AGENT:
                self._agents.pop((signal.user_id, signal.agent_id), None)
                self._idle.pop((signal.user_id, signal.agent_id), None)
                gone = [h for h, (key, _) in self._keys.items() if key.agent_id == signal.agent_id]
            else:
                gone = []
            for key_hash in gone:
                del self._keys[key_hash]

    def sweep(self) -> None:
        """Drop expired entries (the re-check calls this after each pass)."""
        with self._lock:
            now = self._clock()
            _drop_expired(self._keys, now)
            _drop_expired(self._agents, now)
            self._sweep_idle()

    def _sweep_idle(self) -> None:
        now = self._clock()
        for name in [n for n, idle in self._idle.items() if idle.expires <= now]:
            del self._idle[name]
        if len(self._idle) >= MAX_ENTRIES:
            for name in list(self._idle)[: MAX_ENTRIES // 2]:
                del self._idle[name]


def _drop_expired(table: dict[K, tuple[V, float]], now: float) -> None:
    for name in [n for n, (_, expires) in table.items() if expires <= now]:
        del table[name]


def _bounded(table: dict[K, tuple[V, float]], now: float) -> None:
    if len(table) < MAX_ENTRIES:
        return
    _drop_expired(table, now)
    if len(table) >= MAX_ENTRIES:
        for name in list(table)[: MAX_ENTRIES // 2]:
            del table[name]
