"""Agents as seen by their polls: the per-agent row, revocation, listing and history.

An agent's row is created by its first poll and refreshed by every later one with what
its headers say (``agent_identity``). The optional headers only ever add: an absent or
unusable header leaves the stored value.

    X-Agent-Hostname, X-Agent-Platform, X-Agent-Version   columns of the row
    X-Agent-Info          ``metadata["info"]``
    X-Agent-Current-Jobs  ``metadata["current_jobs"]``

A revoked agent (``revoked_at`` set, from the Training Agent page) is refused with 403
``AGENT_REVOKED`` by poll, claim and heartbeat until the page enables it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from training_backend.db.models import ApiKey, TrainingAgent, TrainingJob, User
from training_backend.db.types import new_id
from training_backend.db.upsert import insert_for
from training_backend.errors import ApiError
from training_backend.job_status import JobStatus
from training_backend.services.agent_identity import (
    PLATFORMS,
    AgentIdentity,
    agent_identity_from_headers,
)
from training_backend.services.job_revocation import revoke_job_tokens
from training_backend.services.wakeups import Signal, announce

__all__ = [  # the header reading lives in agent_identity; callers import it from here too
    "AgentIdentity",
    "AgentSeen",
    "agent_identity_from_headers",
    "ensure_agent_allowed",
    "forget_stale_agents",
    "needs_write",
    "poll_coalesce",
    "record_poll",
]

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


REVOKED_MESSAGE = (
    "This agent was revoked on the Training Agent page; "
    "enable it again there to let it poll and claim jobs"
)


def find_agent(db: Session, *, user_id: str, agent_id: str) -> TrainingAgent | None:
    """The user's agent called ``agent_id``, if it has polled (and not been forgotten)."""
    return db.scalar(
        select(TrainingAgent)
        .where(TrainingAgent.user_id == user_id)
        .where(TrainingAgent.agent_id == agent_id)
    )


def ensure_agent_allowed(db: Session, *, user_id: str, agent_id: str) -> TrainingAgent | None:
    """403 ``AGENT_REVOKED`` if the user revoked this agent; else its row (``None`` if new).

    Poll, claim and heartbeat call this before doing anything for the agent.
    """
    agent = find_agent(db, user_id=user_id, agent_id=agent_id)
    if agent is not None and agent.revoked_at is not None:
        raise ApiError(403, "AGENT_REVOKED", REVOKED_MESSAGE)
    return agent


def _changed_columns(agent: AgentIdentity, excluded: Any) -> dict[str, Any]:
    # Only headers the agent sent replace stored values: an absent header erases nothing.
    sent = {"hostname": agent.hostname, "platform": agent.platform, "version": agent.version}
    return {column: excluded[column] for column, value in sent.items() if value is not None}


def _merged_metadata(stored: dict[str, Any], agent: AgentIdentity) -> dict[str, Any]:
    merged = dict(stored)
    if agent.info is not None:
        merged["info"] = agent.info
    if agent.current_jobs is not None:
        merged["current_jobs"] = list(agent.current_jobs)
    return merged


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
    """Whether this poll must write the agent's row: it is new, a header it sent changed,
    its ``last_poll_at`` is in the future, and for a plain poll ``coalesce`` old, for a
    long poll (held until ``holding_until``) the connection on record ends more than
    ``coalesce`` before this hold does.

    Only headers the agent sent count (an absent one erases nothing); a sent but
    unknown platform is stored as null. Asked on every poll, hence spelled out.
    """
    if seen is None or seen.last_poll_at is None or seen.status != "online":
        return True
    age = now - seen.last_poll_at
    if age < timedelta(0):
        return True
    if holding_until is None:
        if age >= coalesce:
            return True
    elif seen.connected_until is None or seen.connected_until < holding_until - coalesce:
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


def record_poll(
    db: Session,
    *,
    user_id: str,
    agent: AgentIdentity,
    now: datetime,
    coalesce: timedelta = POLL_COALESCE,
    seen: AgentSeen | None = None,
    holding_until: datetime | None = None,
    threshold: timedelta = ONLINE_THRESHOLD,
) -> AgentSeen:
    """Create or refresh the agent's row: seen now, with what its headers say, and (for
    a long poll held until ``holding_until``) connected until ``connection_to_record``
    (``threshold``: the online threshold); returns the row as it now is.

    403 ``AGENT_REVOKED`` (and nothing written) for a revoked agent. Costs one indexed
    read (none when ``seen`` gives the row, as this process's cache does), and one
    upsert unless nothing would change but a ``last_poll_at`` younger than ``coalesce``
    (then the poll writes nothing); the metadata is written only when it changed. The
    upsert leaves a revoked row alone and says so, so a revocation that came after
    ``seen`` was read is refused all the same.
    """
    if seen is None:
        row = ensure_agent_allowed(db, user_id=user_id, agent_id=agent.agent_id)
        seen = None if row is None else AgentSeen.of(row)
    if seen is not None and not needs_write(
        seen, agent, now=now, coalesce=coalesce, holding_until=holding_until
    ):
        return seen
    stored = {} if seen is None else seen.metadata
    metadata = _merged_metadata(stored, agent)
    platform = agent.platform if agent.platform in PLATFORMS else None
    connected_until = None
    if holding_until is not None:
        connected_until = connection_to_record(now, holding_until, threshold)
    table = TrainingAgent.__table__
    stmt = insert_for(db, table).values(
        id=new_id(),
        user_id=user_id,
        agent_id=agent.agent_id,
        hostname=agent.hostname,
        platform=platform,
        version=agent.version,
        status="online",
        last_poll_at=now,
        registered_at=now,
        metadata=metadata,
        connected_until=connected_until,
    )
    updates = {"status": "online", "last_poll_at": stmt.excluded.last_poll_at}
    if holding_until is not None:
        updates["connected_until"] = stmt.excluded.connected_until
    updates |= _changed_columns(agent, stmt.excluded)
    if metadata != stored:
        updates["metadata"] = stmt.excluded.metadata
    upsert = stmt.on_conflict_do_update(
        index_elements=["user_id", "agent_id"], set_=updates, where=table.c.revoked_at.is_(None)
    ).returning(table.c.id)
    written = db.execute(upsert).first()
    db.commit()
    if written is None:  # the row is there, and revoked
        raise ApiError(403, "AGENT_REVOKED", REVOKED_MESSAGE)
    before = seen or AgentSeen(None, None, None, "online", {}, None)
    return AgentSeen(
        agent.hostname if agent.hostname is not None else before.hostname,
        platform if agent.platform is not None else before.platform,
        agent.version if agent.version is not None else before.version,
        "online",
        metadata,
        now,
        connected_until if connected_until is not None else before.connected_until,
    )


def list_agents(db: Session, *, user_id: str | None = None) -> list[tuple[TrainingAgent, str]]:
    """Agents (with their owner's name), newest registration first."""
    query = select(TrainingAgent, User.name).join(User, User.id == TrainingAgent.user_id)
    if user_id is not None:
        query = query.where(TrainingAgent.user_id == user_id)
    query = query.order_by(TrainingAgent.registered_at.desc(), TrainingAgent.agent_id)
    return [(agent, name) for agent, name in db.execute(query)]


def is_online(
    agent: TrainingAgent, *, now: datetime, threshold: timedelta = ONLINE_THRESHOLD
) -> bool:
    """True when the agent is not revoked and polled within ``threshold``, or its row
    says it is connected (a long-polling agent writes its row only every other hold; the
    ``poll_coalesce`` margin covers the moment between two holds)."""
    if agent.revoked_at is not None or agent.last_poll_at is None:
        return False
    if now - agent.last_poll_at <= threshold:
        return True
    margin = poll_coalesce(threshold.total_seconds())
    return agent.connected_until is not None and now <= agent.connected_until + margin


def is_connected(agent: TrainingAgent, *, now: datetime, held_here: set[str]) -> bool:
    """True when the agent holds a long poll now: in this process (``held_here``, the
    agent ids of its held polls), or in another one (the hold its row records)."""
    if agent.revoked_at is not None:
        return False
    if agent.agent_id in held_here:
        return True
    return agent.connected_until is not None and agent.connected_until > now


def get_agent(db: Session, *, user_id: str, agent_id: str) -> TrainingAgent:
    """The user's agent ``agent_id`` (404 ``AGENT_NOT_FOUND``, also for another user's)."""
    agent = find_agent(db, user_id=user_id, agent_id=agent_id)
    if agent is None:
        raise ApiError(404, "AGENT_NOT_FOUND", "Agent not found")
    return agent


def revoke_agent(db: Session, *, user_id: str, agent_id: str, now: datetime) -> TrainingAgent:
    """Refuse the agent's polls and claims from now on (idempotent); returns its row.

    The API keys an enrollment bound to the agent are revoked with it, and so are the
    job tokens of the jobs it holds (``job_revocation``).
    """
    agent = get_agent(db, user_id=user_id, agent_id=agent_id)
    if agent.revoked_at is None:
        agent.revoked_at = now
        agent.status = "offline"
        revoke_agent_keys(db, user_id=user_id, agent_id=agent_id, now=now)
        revoke_job_tokens(db, user_id=user_id, agent_id=agent_id, now=now)
        announce(db, [Signal.agent(user_id, agent_id)])  # held polls elsewhere answer 403
        db.commit()
    return agent


def enable_agent(db: Session, *, user_id: str, agent_id: str) -> TrainingAgent:
    """Lift a revocation (idempotent): the agent's next poll is answered again.

    Its bound keys revoked together with it come back; one revoked on its own does not.
    """
    agent = get_agent(db, user_id=user_id, agent_id=agent_id)
    if agent.revoked_at is not None:
        restore_agent_keys(db, user_id=user_id, agent_id=agent_id, revoked_at=agent.revoked_at)
        agent.revoked_at = None
        announce(db, [Signal.agent(user_id, agent_id)])  # caches forget the revocation
        db.commit()
    return agent


def revoke_agent_keys(db: Session, *, user_id: str, agent_id: str, now: datetime) -> None:
    """Revoke the live keys an enrollment bound to ``agent_id`` (the caller commits)."""
    db.execute(
        update(ApiKey)
        .where(ApiKey.user_id == user_id)
        .where(ApiKey.agent_id == agent_id)
        .where(ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )


def restore_agent_keys(db: Session, *, user_id: str, agent_id: str, revoked_at: datetime) -> None:
    """Give back the keys revoked together with the agent (same instant; caller commits).

    A key revoked on its own, at another moment, stays revoked.
    """
    db.execute(
        update(ApiKey)
        .where(ApiKey.user_id == user_id)
        .where(ApiKey.agent_id == agent_id)
        .where(ApiKey.revoked_at == revoked_at)
        .values(revoked_at=None)
        .execution_options(synchronize_session=False)
    )


def forget_stale_agents(db: Session, *, now: datetime, retention: timedelta) -> int:
    """Delete agents that have not polled for ``retention``; returns how many.

    Revoked agents are kept: their row is what keeps them out, and it goes only when
    the user enables the agent again.
    """
    cutoff = now - retention
    last_seen = func.coalesce(TrainingAgent.last_poll_at, TrainingAgent.registered_at)
    result = db.execute(
        delete(TrainingAgent)
        .where(TrainingAgent.revoked_at.is_(None))
        .where(last_seen < cutoff)
        .execution_options(synchronize_session=False)
    )
    db.commit()
    return int(getattr(result, "rowcount", 0) or 0)


#: Job statuses during which a job occupies its agent.
ACTIVE_JOB_STATUSES = (JobStatus.RUNNING, JobStatus.PAUSED)


def current_jobs_by_agent(
    db: Session, *, user_id: str, agent_ids: Sequence[str]
) -> dict[str, list[TrainingJob]]:
    """The user's running and paused jobs of each of ``agent_ids``, oldest claim first."""
    found: dict[str, list[TrainingJob]] = {agent_id: [] for agent_id in agent_ids}
    if not agent_ids:
        return found
    jobs = db.scalars(
        select(TrainingJob)
        .where(TrainingJob.user_id == user_id)
        .where(TrainingJob.status.in_(ACTIVE_JOB_STATUSES))
        .where(TrainingJob.agent_id.in_(list(agent_ids)))
        .order_by(TrainingJob.claimed_at, TrainingJob.id)
    )
    for job in jobs:
        found[str(job.agent_id)].append(job)
    return found


def job_counts(db: Session, *, user_id: str, agent_id: str) -> dict[str, int]:
    """How many of this user's jobs the agent took, by status (absent statuses: none)."""
    rows = db.execute(
        select(TrainingJob.status, func.count())
        .where(TrainingJob.user_id == user_id)
        .where(TrainingJob.agent_id == agent_id)
        .group_by(TrainingJob.status)
    )
    return {status: int(count) for status, count in rows}


def list_agent_jobs(
    db: Session, *, user_id: str, agent_id: str, limit: int, offset: int
) -> tuple[list[TrainingJob], int]:
    """A page of this user's jobs the agent took, newest claim first, and their total."""
    mine = (TrainingJob.user_id == user_id, TrainingJob.agent_id == agent_id)
    total = db.scalar(select(func.count()).select_from(TrainingJob).where(*mine)) or 0
    jobs = db.scalars(
        select(TrainingJob)
        .where(*mine)
        .order_by(TrainingJob.claimed_at.desc(), TrainingJob.created_at.desc(), TrainingJob.id)
        .limit(limit)
        .offset(offset)
    )
    return list(jobs), int(total)
