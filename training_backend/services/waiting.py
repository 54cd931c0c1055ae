"""Why a pending job waits: the agent it asks for, and whether one is online and free.

    waiting_reasons(db, user_id=..., jobs=[...], now=..., threshold=...)
        -> {job_id: "an agent with label a100 (none online)", ...}

It reads the user's agents that are online (``agents.is_online``) once, with what their
last poll said about them (``metadata["info"]``: labels, GPUs, busy slots), and asks
``services.matching.waiting_for`` for each pending job. Jobs that do not wait (running,
finished) get no entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from training_backend.db.models import TrainingAgent, TrainingJob
from training_backend.job_status import JobStatus
from training_backend.services.agents import is_online
from training_backend.services.matching import AgentProfile, waiting_for


def online_profiles(
    db: Session, *, user_id: str, now: datetime, threshold: timedelta
) -> list[AgentProfile]:
    """The profiles of the user's agents online now (revoked ones are not)."""
    agents = db.scalars(
        select(TrainingAgent)
        .where(TrainingAgent.user_id == user_id)
        .where(TrainingAgent.revoked_at.is_(None))
    )
    return [
        AgentProfile.of(agent.agent_id, _info(agent))
        for agent in agents
        if is_online(agent, now=now, threshold=threshold)
    ]


def _info(agent: TrainingAgent) -> dict[str, Any] | None:
    info = (agent.metadata_ or {}).get("info")
    return info if isinstance(info, dict) else None


def waiting_reasons(
    db: Session,
    *,
    user_id: str,
    jobs: Sequence[TrainingJob],
    now: datetime,
    threshold: timedelta,
) -> dict[str, str]:
    """``waiting_for`` of each pending job in ``jobs``, by job id."""
    pending = [job for job in jobs if job.status == JobStatus.PENDING.value]
    if not pending:
        return {}
    online = online_profiles(db, user_id=user_id, now=now, threshold=threshold)
    return {job.id: waiting_for(job.requirements, online) for job in pending}
