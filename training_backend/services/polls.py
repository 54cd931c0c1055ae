"""One poll's answer, once its caller has read its headers: what the poll route and the
quick lane for held polls (``quick_polls.QuickPolls``) both do.

    answer_poll(desk, offers, headers, agent=..., quick=..., wait_s=..., ...) -> bytes

It checks the poll in (from the caches when ``quick`` is given), offers a job or holds
the poll until one turns up (``services.dispatch.poll_for_job``), adds the update this
backend offers the agent, and serialises the answer. ``ApiError`` (and database errors)
propagate: the caller renders them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from sqlalchemy.orm import Session

from training_backend.db.types import utcnow
from training_backend.schemas.agent import poll_body
from training_backend.services.agent_updates import UpdateOffers
from training_backend.services.agents import AgentIdentity
from training_backend.services.checkin import CheckedIn, PollDesk, QuickCheckIn, full_check_in
from training_backend.services.dispatch import poll_for_job


async def answer_poll(
    desk: PollDesk,
    offers: UpdateOffers,
    headers: Mapping[str, str],
    *,
    agent: AgentIdentity | None,
    quick: QuickCheckIn | None,
    wait_s: float,
    holding_until: datetime | None,
    backend_url: Callable[[], str],
) -> bytes:
    """The body of the poll's answer (a job, ``null``, and maybe an ``agent_update``)."""

    def check_in(db: Session) -> CheckedIn:
        return full_check_in(
            db, desk, headers, backend_url=backend_url, now=utcnow(), holding_until=holding_until
        )

    job = await poll_for_job(desk=desk, wait_s=wait_s, check_in=check_in, quick=quick)
    update = await offers.for_poll(
        desk.settings,
        platform=None if agent is None else agent.platform,
        version=None if agent is None else agent.version,
        backend_url=backend_url,
    )
    return poll_body(job, desk.settings.poll_interval_seconds, update)
