"""Checking a poll in: its key, its agent's version and row, with the process's caches.

    quick_check_in(desk, headers, agent, ...)   from the caches only, on the event loop;
                                                 ``None`` when the database must be asked
    record_known_agent(db, desk, quick, ...)    the row write a quick check-in may need
    full_check_in(db, desk, headers, ...)       the same with the database; fills the caches
    check_in_agent(db, ...)                     a claim's check-in (426, then the row)

They refuse the same things the same way (401/403 for the key, 426 for an old agent, 429
for the key's rate limit); ``quick_check_in`` spends the rate limit only when it answers,
so a poll is never counted twice. Revocations reach the caches as signals
(``services.poll_cache``), so a revoked key or agent is refused within a second.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from training_backend.errors import ApiError
from training_backend.ratelimit import ApiKeyRateLimit
from training_backend.security import hash_secret, is_api_key_format
from training_backend.services.agent_versions import is_supported, require_supported
from training_backend.services.agents import (
    AgentIdentity,
    AgentSeen,
    agent_identity_from_headers,
    needs_write,
    poll_coalesce,
    record_poll,
)
from training_backend.services.api_keys import (
    authenticate_api_key,
    extract_api_key,
    require_agent,
    require_scope,
)
from training_backend.services.matching import AgentProfile
from training_backend.services.poll_cache import PollCache
from training_backend.services.wakeups import Accepts, Wakeups
from training_backend.settings import BackendSettings

SCOPE = "training"

BackendUrl = str | Callable[[], str]
"""This backend's URL, or how to work it out (only a refusal needs it)."""


@dataclass(slots=True)
class PollDesk:
    """What a poll needs from its process, handed over at once (``deps.poll_desk``)."""

    settings: BackendSettings
    sessions: sessionmaker[Session]
    wakeups: Wakeups
    rate_limit: ApiKeyRateLimit
    cache: PollCache


@dataclass(frozen=True)
class CheckedIn:
    """Who polls, once authenticated and recorded: what a look and a waiter need."""

    user_id: str
    agent_id: str
    key_id: str = ""
    accepts: Accepts | None = None
    """Which jobs it may be offered (``None``: a v1 agent, jobs without requirements)."""
    full: bool = False
    """All its job slots are busy: it is offered nothing."""
    fingerprint: str = ""
    """What the agent said about itself that decides which jobs it can take."""

    @classmethod
    def of(
        cls, user_id: str, agent: AgentIdentity, key_id: str, headers: Mapping[str, str]
    ) -> CheckedIn:
        """The check-in of ``agent`` (its profile from its ``X-Agent-Info``)."""
        profile = AgentProfile.of(agent.agent_id, agent.info)
        accepts = profile.accepts if profile.informed else None
        return cls(user_id, agent.agent_id, key_id, accepts, profile.full, fingerprint_of(headers))


@dataclass(frozen=True)
class QuickCheckIn:
    """A check-in the caches could make: the key is known good and the agent is known.

    ``must_record``: the agent's row needs a write (its ``last_poll_at`` is getting old,
    or a header changed), which ``record_known_agent`` makes without reading the key or
    the row again.
    """

    who: CheckedIn
    agent: AgentIdentity
    seen: AgentSeen
    must_record: bool
    holding_until: datetime | None = None


def fingerprint_of(headers: Mapping[str, str]) -> str:
    """The part of a poll's headers that offers depend on (its ``X-Agent-Info``)."""
    return headers.get("x-agent-info", "")


def require_supported_agent(
    agent: AgentIdentity, *, settings: BackendSettings, backend_url: BackendUrl
) -> None:
    """426 ``AGENT_UPGRADE_REQUIRED`` for an agent older than ``min_agent_version``."""
    if is_supported(agent.version, settings.min_agent_version):
        return
    require_supported(
        agent.version,
        minimum=settings.min_agent_version,
        backend_url=backend_url() if callable(backend_url) else backend_url,
        platform=agent.platform,
    )


def check_in_agent(
    db: Session,
    *,
    user_id: str,
    agent: AgentIdentity,
    settings: BackendSettings,
    backend_url: BackendUrl,
    now: datetime,
    holding_until: datetime | None = None,
) -> AgentSeen:
    """Record that ``agent`` called (holding a poll until ``holding_until``), once it is
    known to be new enough (426 otherwise, before anything is recorded); returns its row
    as it now is."""
    require_supported_agent(agent, settings=settings, backend_url=backend_url)
    coalesce = poll_coalesce(settings.online_threshold_seconds)
    return record_poll(
        db,
        user_id=user_id,
        agent=agent,
        now=now,
        coalesce=coalesce,
        holding_until=holding_until,
        threshold=timedelta(seconds=settings.online_threshold_seconds),
    )


def quick_check_in(
    desk: PollDesk,
    headers: Mapping[str, str],
    agent: AgentIdentity,
    *,
    backend_url: BackendUrl,
    now: datetime,
    spend: bool = True,
    holding_until: datetime | None = None,
) -> QuickCheckIn | None:
    """The check-in from the caches alone, or ``None`` when it needs the database (an
    unknown or expired key or agent row).

    ``spend=False`` leaves the key's rate limit to the caller, who spends it
    (``desk.rate_limit.check_here``) once it decides to answer this way.
    """
    key = extract_api_key(headers)
    if not is_api_key_format(key):
        return None
    cached = desk.cache.key(hash_secret(key))
    if cached is None:
        return None
    require_scope(cached, SCOPE)
    require_agent(cached, agent.agent_id)
    require_supported_agent(agent, settings=desk.settings, backend_url=backend_url)
    seen = desk.cache.agent(cached.user_id, agent.agent_id)
    if seen is None:
        return None
    if spend and not desk.rate_limit.check_here(cached.id):  # 429 RATE_LIMITED
        return None  # the key's shared bucket must be asked: the full path does that
    coalesce = poll_coalesce(desk.settings.online_threshold_seconds)
    who = CheckedIn.of(cached.user_id, agent, cached.id, headers)
    held = needs_write(seen, agent, now=now, coalesce=coalesce, holding_until=holding_until)
    return QuickCheckIn(who, agent, seen, held, holding_until)


def record_known_agent(db: Session, desk: PollDesk, quick: QuickCheckIn, *, now: datetime) -> None:
    """Write the poll of an agent the caches know (403 if it was revoked meanwhile)."""
    who = quick.who
    coalesce = poll_coalesce(desk.settings.online_threshold_seconds)
    try:
        seen = record_poll(
            db,
            user_id=who.user_id,
            agent=quick.agent,
            now=now,
            coalesce=coalesce,
            seen=quick.seen,
            holding_until=quick.holding_until,
            threshold=timedelta(seconds=desk.settings.online_threshold_seconds),
        )
    except ApiError:
        desk.cache.remember_agent(who.user_id, who.agent_id, None)
        raise
    desk.cache.remember_agent(who.user_id, who.agent_id, seen)


def full_check_in(
    db: Session,
    desk: PollDesk,
    headers: Mapping[str, str],
    *,
    backend_url: BackendUrl,
    now: datetime,
    holding_until: datetime | None = None,
) -> CheckedIn:
    """Authenticate the key, read the agent's headers (400 when malformed), check its
    version, and record the poll on its row (holding until ``holding_until``). The row
    is read again, never taken from the cache: this is also the path that must see a
    revocation no signal announced yet."""
    key = extract_api_key(headers)
    row = authenticate_api_key(db, key=key, scope=SCOPE, now=now)
    db.commit()
    require_agent(row, headers.get("x-agent-id", "").strip() or None)
    desk.rate_limit.check(row.id)  # only after the key is known to be valid
    desk.cache.remember_key(hash_secret(key), row)
    agent = agent_identity_from_headers(headers)
    seen = check_in_agent(
        db,
        user_id=row.user_id,
        agent=agent,
        settings=desk.settings,
        backend_url=backend_url,
        now=now,
        holding_until=holding_until,
    )
    desk.cache.remember_agent(row.user_id, agent.agent_id, seen)
    return CheckedIn.of(row.user_id, agent, row.id, headers)
