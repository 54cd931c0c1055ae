"""The signed-in user's agents: list, detail, job history, revoke and enable."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from training_backend.db.models import TrainingAgent
from training_backend.db.types import utcnow
from training_backend.deps import CurrentUser, DbSession, SettingsDep, WakeupsDep
from training_backend.routing import DbRoute
from training_backend.schemas.accounts import (
    AgentAnswer,
    AgentDetail,
    AgentJobsPage,
    AgentList,
    AgentView,
)
from training_backend.schemas.jobs import JobPublic
from training_backend.services import agents as service
from training_backend.services.jobs import dataset_of
from training_backend.services.wakeups import Signal, Wakeups
from training_backend.settings import BackendSettings

router = APIRouter(prefix="/api/training/agents", tags=["agents"], route_class=DbRoute)

MAX_JOBS_PAGE = 200
INT32_MAX = 2_147_483_647


def _threshold(settings: BackendSettings) -> timedelta:
    return timedelta(seconds=settings.online_threshold_seconds)


def _detail(
    db: DbSession, agent: TrainingAgent, settings: BackendSettings, wakeups: Wakeups
) -> AgentAnswer:
    user_id, agent_id = agent.user_id, agent.agent_id
    current = service.current_jobs_by_agent(db, user_id=user_id, agent_ids=[agent_id])
    counts = service.job_counts(db, user_id=user_id, agent_id=agent_id)
    now = utcnow()
    online = service.is_online(agent, now=now, threshold=_threshold(settings))
    connected = service.is_connected(agent, now=now, held_here=wakeups.held_agents(user_id))
    view = AgentView.of(agent, online=online, current_jobs=current[agent_id], connected=connected)
    detail = AgentDetail(
        **view.model_dump(),
        total_jobs=sum(counts.values()),
        completed_jobs=counts.get("completed", 0),
        failed_jobs=counts.get("failed", 0),
        running_jobs=counts.get("running", 0),
    )
    return AgentAnswer(agent=detail)


@router.get("")
def list_agents(
    user: CurrentUser, db: DbSession, settings: SettingsDep, wakeups: WakeupsDep
) -> AgentList:
    """Every agent of the caller, newest registration first, with its live state (its
    labels, its jobs, and ``connected_now`` while it holds a poll)."""
    rows = [agent for agent, _ in service.list_agents(db, user_id=user.id)]
    ids = [agent.agent_id for agent in rows]
    current = service.current_jobs_by_agent(db, user_id=user.id, agent_ids=ids)
    now, threshold = utcnow(), _threshold(settings)
    held = wakeups.held_agents(user.id)
    views = [
        AgentView.of(
            agent,
            online=service.is_online(agent, now=now, threshold=threshold),
            current_jobs=current[agent.agent_id],
            connected=service.is_connected(agent, now=now, held_here=held),
        )
        for agent in rows
    ]
    return AgentList(agents=views, online_threshold_seconds=settings.online_threshold_seconds)


@router.get("/{agent_id}")
def get_agent(
    agent_id: str, user: CurrentUser, db: DbSession, settings: SettingsDep, wakeups: WakeupsDep
) -> AgentAnswer:
    """One agent with the counts of the caller's jobs it took (404 for others' agents)."""
    agent = service.get_agent(db, user_id=user.id, agent_id=agent_id)
    return _detail(db, agent, settings, wakeups)


@router.get("/{agent_id}/jobs")
def agent_jobs(
    agent_id: str,
    user: CurrentUser,
    db: DbSession,
    limit: Annotated[int, Query(ge=1, le=MAX_JOBS_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
) -> AgentJobsPage:
    """The caller's jobs this agent took, newest first, a page at a time."""
    service.get_agent(db, user_id=user.id, agent_id=agent_id)
    jobs, total = service.list_agent_jobs(
        db, user_id=user.id, agent_id=agent_id, limit=limit, offset=offset
    )
    return AgentJobsPage(
        jobs=[JobPublic.of(job, dataset=dataset_of(db, job)) for job in jobs],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.delete("/{agent_id}")
def revoke_agent(
    agent_id: str, user: CurrentUser, db: DbSession, settings: SettingsDep, wakeups: WakeupsDep
) -> AgentAnswer:
    """Revoke the agent: its polls and claims get 403 ``AGENT_REVOKED`` until enabled.

    The row stays (that is what keeps the agent out) and is shown with ``revoked``;
    ``POST …/enable`` lifts the revocation. Revoking twice changes nothing.
    """
    agent = service.revoke_agent(db, user_id=user.id, agent_id=agent_id, now=utcnow())
    wakeups.deliver(Signal.agent(user.id, agent_id))  # a poll it holds answers 403 now
    return _detail(db, agent, settings, wakeups)


@router.post("/{agent_id}/enable")
def enable_agent(
    agent_id: str, user: CurrentUser, db: DbSession, settings: SettingsDep, wakeups: WakeupsDep
) -> AgentAnswer:
    """Lift a revocation: the agent's next poll is answered as usual."""
    agent = service.enable_agent(db, user_id=user.id, agent_id=agent_id)
    wakeups.deliver(Signal.agent(user.id, agent_id))
    return _detail(db, agent, settings, wakeups)
