"""What an agent's poll must write on its row, decided from the row as last seen: the
rules of ``agents.record_poll``, kept apart (no database) so the poll caches
(``services.checkin``) ask the same questions.

    must_write_now(seen, agent, now=...)     a header changed, a new or offline agent
    refresh_due(seen, now=..., ...)          only "still here" is due (``agent_refreshes``)
    connection_to_record(now, holding_until) the ``connected_until`` a long poll writes
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from training_backend.db.models import TrainingAgent
from training_backend.services.agent_identity import PLATFORMS, AgentIdentity

#: An agent that polled within this long counts as online (setting
#: ``online_threshold_seconds``; this is its default).
ONLINE_THRESHOLD = timedelta(seconds=60)
#: A poll writes nothing when the agent's row would change only by a ``last_poll_at``
#: younger than this, so back-to-back polls cost no write (on SQLite every write takes
#: the one write lock). The stored ``last_poll_at`` (the page's "last seen") lags the
#: real last poll by up to this much; a 10 s poller writes about every other poll.
#: A long poll instead writes when the connection its row records would end before its
#: hold does (``connection_to_record``): back-to-back 30 s holds write every other hold,
#: and the row's ``last_poll_at`` may then lag by one hold, while ``connected_until``
#: keeps the agent online. Header changes are always written at once.
POLL_COALESCE = timedelta(seconds=10)


def poll_coalesce(online_threshold_seconds: float) -> timedelta:
    """The coalescing window for a threshold: ``POLL_COALESCE``, or a sixth of a shorter
    threshold (so a lowered threshold keeps the same margin)."""
    return min(POLL_COALESCE, timedelta(seconds=online_threshold_seconds) / 6)


@dataclass(frozen=True)
class AgentSeen:
    """An agent's row as its polls last left it: what deciding on a write needs."""

    hostname: str | None
    platform: str | None
    version: str | None
    status: str
    metadata: dict[str, Any]
    last_poll_at: datetime | None
    connected_until: datetime | None = None

    @classmethod
    def of(cls, row: TrainingAgent) -> AgentSeen:
        """The view of a stored row."""
        metadata = dict(row.metadata_ or {})
        return cls(
            row.hostname,
            row.platform,
            row.version,
            row.status,
            metadata,
            row.last_poll_at,
            row.connected_until,
        )


def connection_to_record(
    now: datetime, holding_until: datetime, threshold: timedelta = ONLINE_THRESHOLD
) -> datetime:
    """The ``connected_until`` a long poll held until ``holding_until`` writes: this hold
    and one more of the same length (an agent that polls back to back is back by then),
    but never more than ``threshold`` from now, so an agent that went away stops counting
    as connected no later than an agent that stopped polling stops counting as online."""
    return min(holding_until + (holding_until - now), now + threshold)


def needs_write(
    seen: AgentSeen | None,
    agent: AgentIdentity,
    *,
    now: datetime,
    coalesce: timedelta,
    holding_until: datetime | None = None,
) -> bool:
    """Whether this poll must write the agent's row: ``must_write_now`` or
    ``refresh_due``."""
    if seen is None or must_write_now(seen, agent, now=now):
        return True
    return refresh_due(seen, now=now, coalesce=coalesce, holding_until=holding_until)


def must_write_now(seen: AgentSeen | None, agent: AgentIdentity, *, now: datetime) -> bool:
    """True when the poll says what only a write can record: the agent is new or was
    offline, its ``last_poll_at`` is in the future, or a header it sent changed.

    Only headers the agent sent count (an absent one erases nothing); a sent but
    unknown platform is stored as null. Asked on every poll, hence spelled out.
    """
    if seen is None or seen.last_poll_at is None or seen.status != "online":
        return True
    if now < seen.last_poll_at:
        return True
    metadata = seen.metadata
    if agent.info is not None and agent.info != metadata.get("info"):
        return True
    if agent.current_jobs is not None and list(agent.current_jobs) != metadata.get("current_jobs"):
        return True
    if agent.hostname is not None and agent.hostname != seen.hostname:
        return True
    if agent.version is not None and agent.version != seen.version:
        return True
    platform = agent.platform if agent.platform in PLATFORMS else None
    return agent.platform is not None and platform != seen.platform


def refresh_due(
    seen: AgentSeen, *, now: datetime, coalesce: timedelta, holding_until: datetime | None
) -> bool:
    """True when only "still here" needs writing: for a plain poll, ``last_poll_at`` is
    ``coalesce`` old; for a long poll held until ``holding_until``, the connection on
    record ends more than ``coalesce`` before this hold does."""
    if seen.last_poll_at is None:
        return True
    if holding_until is None:
        return now - seen.last_poll_at >= coalesce
    return seen.connected_until is None or seen.connected_until < holding_until - coalesce
