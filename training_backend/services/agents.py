"""Agents as seen by their polls: identity headers, the per-agent row, listing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from training_backend.db.models import TrainingAgent, User
from training_backend.db.types import new_id
from training_backend.db.upsert import insert_for
from training_backend.errors import ApiError

AGENT_ID_PREFIX = "agent_"
AGENT_ID_MIN_CHARS = 10
AGENT_ID_MAX_CHARS = 128
PLATFORMS = ("linux", "darwin", "windows")
#: An agent that polled within this long counts as online.
ONLINE_THRESHOLD = timedelta(seconds=60)
_MAX_HEADER_CHARS = {"hostname": 255, "version": 64}


@dataclass(frozen=True)
class AgentIdentity:
    """Who is polling: the checked agent id and what the optional headers said.

    ``None`` means the header was absent, so the stored value stays. ``platform`` is the
    header lowercased; ``record_poll`` stores null for a platform outside ``PLATFORMS``.
    """

    agent_id: str
    hostname: str | None = None
    platform: str | None = None
    version: str | None = None


def _optional_header(headers: Mapping[str, str], name: str, max_chars: int) -> str | None:
    value = headers.get(name, "").strip()
    return value[:max_chars] or None


def agent_identity_from_headers(headers: Mapping[str, str]) -> AgentIdentity:
    """Read and check ``X-Agent-ID`` (400 if absent or malformed) and the optional headers."""
    agent_id = headers.get("x-agent-id", "").strip()
    if not agent_id:
        raise ApiError(400, "MISSING_AGENT_ID", "Missing X-Agent-ID header")
    valid_length = AGENT_ID_MIN_CHARS <= len(agent_id) <= AGENT_ID_MAX_CHARS
    if not agent_id.startswith(AGENT_ID_PREFIX) or not valid_length:
        message = "Invalid X-Agent-ID format. Expected: agent_xxxxx"
        raise ApiError(400, "INVALID_AGENT_ID", message)
    platform = _optional_header(headers, "x-agent-platform", 16)
    return AgentIdentity(
        agent_id=agent_id,
        hostname=_optional_header(headers, "x-agent-hostname", _MAX_HEADER_CHARS["hostname"]),
        platform=None if platform is None else platform.lower(),
        version=_optional_header(headers, "x-agent-version", _MAX_HEADER_CHARS["version"]),
    )


def _changed_columns(agent: AgentIdentity, excluded: Any) -> dict[str, Any]:
    # Only headers the agent sent replace stored values: an absent header erases nothing.
    sent = {"hostname": agent.hostname, "platform": agent.platform, "version": agent.version}
    return {column: excluded[column] for column, value in sent.items() if value is not None}


def record_poll(db: Session, *, user_id: str, agent: AgentIdentity, now: datetime) -> None:
    """Create or refresh the agent's row: seen now, online, with what its headers say."""
    platform = agent.platform if agent.platform in PLATFORMS else None
    stmt = insert_for(db, TrainingAgent.__table__).values(
        id=new_id(),
        user_id=user_id,
        agent_id=agent.agent_id,
        hostname=agent.hostname,
        platform=platform,
        version=agent.version,
        status="online",
        last_poll_at=now,
        registered_at=now,
        metadata={},
    )
    updates = {"status": "online", "last_poll_at": stmt.excluded.last_poll_at}
    updates |= _changed_columns(agent, stmt.excluded)
    db.execute(stmt.on_conflict_do_update(index_elements=["user_id", "agent_id"], set_=updates))
    db.commit()


def list_agents(db: Session, *, user_id: str | None = None) -> list[tuple[TrainingAgent, str]]:
    """Agents (with their owner's name), newest registration first."""
    query = select(TrainingAgent, User.name).join(User, User.id == TrainingAgent.user_id)
    if user_id is not None:
        query = query.where(TrainingAgent.user_id == user_id)
    query = query.order_by(TrainingAgent.registered_at.desc(), TrainingAgent.agent_id)
    return [(agent, name) for agent, name in db.execute(query)]


def is_online(agent: TrainingAgent, *, now: datetime) -> bool:
    """True when the agent polled within ``ONLINE_THRESHOLD``."""
    return agent.last_poll_at is not None and now - agent.last_poll_at <= ONLINE_THRESHOLD
