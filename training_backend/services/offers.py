"""Offers: which pending job a poll hands to an agent, reserved for it a few seconds.

A poll used to be a pure peek at the user's oldest pending job, so every agent polling
at once was offered the same job and all but one lost the claim race (409
``ALREADY_CLAIMED``), polled again, and raced again. Now an offer reserves the job for
``OFFER_HOLD``: the job's ``available_at`` moves to the end of the hold and
``offered_to`` names the agent, so concurrent pollers are offered different jobs. An
agent that polls again before it claims is offered the same job; a reservation that
lapses makes the job available again, and the shared re-check (``services.recheck``)
sees its ``available_at`` pass and wakes an agent that can take it. A claim still works
for any agent of the user (a reservation only shapes offers), so nothing can be lost.

Reserving is a compare-and-set on ``available_at``; on PostgreSQL the one row taken is
first locked ``FOR UPDATE SKIP LOCKED``, so concurrent offers neither wait on each other
nor take the same job. Candidates are read oldest first in pages (``PAGE``) and filtered
by ``accepts`` (the job's requirements match the agent); an agent that sends no
information about itself (a protocol-v1 agent) is offered only jobs without
requirements, filtered in SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, or_, select, update
from sqlalchemy.orm import Session

from training_backend.db.models import TrainingJob
from training_backend.job_status import JobStatus

#: How long an offered job waits for the claim of the agent it was offered to.
OFFER_HOLD = timedelta(seconds=10)
#: Candidates read at a time, and at most in one look.
PAGE = 32
MAX_SCAN = 2048

Accepts = Callable[[Mapping[str, Any] | None], bool]


def _pending(user_id: str) -> Select[TrainingJob]:
    return (
        select(TrainingJob)
        .where(TrainingJob.user_id == user_id)
        .where(TrainingJob.status == JobStatus.PENDING.value)
        .where(TrainingJob.agent_id.is_(None))
    )


def _held_for(db: Session, *, user_id: str, agent_id: str, now: datetime) -> TrainingJob | None:
    """A job still reserved for this agent (it polled again before claiming)."""
    query = (
        _pending(user_id)
        .where(TrainingJob.offered_to == agent_id, TrainingJob.available_at > now)
        .order_by(TrainingJob.created_at, TrainingJob.id)
        .limit(1)
    )
    return db.scalar(query)


def _reserve(db: Session, job: TrainingJob, *, agent_id: str, now: datetime) -> bool:
    """Reserve ``job`` for ``agent_id`` unless someone else got to it first."""
    until = now + OFFER_HOLD
    stmt = (
        update(TrainingJob)
        .where(TrainingJob.id == job.id, TrainingJob.status == JobStatus.PENDING.value)
        .where(TrainingJob.agent_id.is_(None), TrainingJob.available_at == job.available_at)
        .values(offered_to=agent_id, available_at=until)
        .execution_options(synchronize_session=False)
    )
    if not db.execute(stmt).rowcount:  # type: ignore[attr-defined]
        return False
    job.offered_to, job.available_at = agent_id, until
    return True


def _first_free(
    db: Session, query: Select[TrainingJob], *, postgresql: bool, agent_id: str, now: datetime
) -> TrainingJob | None:
    """Reserve the oldest job ``query`` finds that no concurrent offer is taking."""
    ordered = query.order_by(TrainingJob.created_at, TrainingJob.id)
    if postgresql:
        # Lock just the one row, skipping those other offers hold right now.
        job = db.scalar(ordered.limit(1).with_for_update(skip_locked=True))
        if job is not None and _reserve(db, job, agent_id=agent_id, now=now):
            return job
        return None
    for job in db.scalars(ordered.limit(PAGE)).all():  # SQLite: one writer at a time
        if _reserve(db, job, agent_id=agent_id, now=now):
            return job
    return None


def take_offer(
    db: Session,
    *,
    user_id: str,
    agent_id: str,
    now: datetime,
    accepts: Accepts | None = None,
) -> TrainingJob | None:
    """The oldest available job of ``user_id`` that ``accepts`` (``None``: a v1 agent,
    jobs without requirements only), reserved for ``agent_id``; commits. ``None`` when
    there is none."""
    held = _held_for(db, user_id=user_id, agent_id=agent_id, now=now)
    if held is not None:
        db.commit()
        return held
    postgresql = db.get_bind().dialect.name == "postgresql"
    available = _pending(user_id).where(TrainingJob.available_at <= now)
    job = None
    if accepts is None:
        query = available.where(TrainingJob.requirements.is_(None))
        job = _first_free(db, query, postgresql=postgresql, agent_id=agent_id, now=now)
    else:
        job = _first_acceptable(
            db, available, accepts, postgresql=postgresql, agent_id=agent_id, now=now
        )
    db.commit()  # the reservation, or the end of a read (and of any row locks)
    return job


def _first_acceptable(
    db: Session,
    available: Select[TrainingJob],
    accepts: Accepts,
    *,
    postgresql: bool,
    agent_id: str,
    now: datetime,
) -> TrainingJob | None:
    """Page through ``available`` oldest first; reserve the first job ``accepts``."""
    after: tuple[datetime, str] | None = None
    for _ in range(MAX_SCAN // PAGE):
        page = available
        if after is not None:
            created_at, job_id = after
            page = page.where(
                or_(
                    TrainingJob.created_at > created_at,
                    and_(TrainingJob.created_at == created_at, TrainingJob.id > job_id),
                )
            )
        jobs = db.scalars(page.order_by(TrainingJob.created_at, TrainingJob.id).limit(PAGE)).all()
        ids = [job.id for job in jobs if accepts(job.requirements)]
        if ids:
            query = available.where(TrainingJob.id.in_(ids))
            job = _first_free(db, query, postgresql=postgresql, agent_id=agent_id, now=now)
            if job is not None:
                return job
        if len(jobs) < PAGE:
            return None
        after = (jobs[-1].created_at, jobs[-1].id)
    return None
