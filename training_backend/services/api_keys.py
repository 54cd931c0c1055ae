"""API keys: creating them, and checking the one a request carries."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from training_backend.db.models import ApiKey, TrainingAgent
from training_backend.db.types import utcnow
from training_backend.errors import ApiError
from training_backend.security import (
    API_KEY_PREFIX,
    display_prefix,
    generate_api_key,
    hash_secret,
    is_api_key_format,
)
from training_backend.services.agents import REVOKED_MESSAGE
from training_backend.services.job_revocation import revoke_job_tokens
from training_backend.services.quotas import check_api_key_quota, lock_user
from training_backend.services.wakeups import Signal, announce

#: Scopes a key may carry; ``all`` grants every other one.
VALID_SCOPES = ("all", "training", "production", "testing")
#: ``last_used_at`` is refreshed at most this often, so a busy key costs no write per call.
LAST_USED_RESOLUTION = timedelta(minutes=1)

_BEARER = re.compile(r"^Bearer\s+(.+)$", re.IGNORECASE)
_WWW_AUTHENTICATE = {"WWW-Authenticate": "Bearer"}


def _unauthorized(code: str, message: str) -> ApiError:
    return ApiError(401, code, message, headers=_WWW_AUTHENTICATE)


def create_api_key(
    db: Session, *, user_id: str, name: str, scopes: Sequence[str], max_keys: int = 0
) -> tuple[ApiKey, str]:
    """Store a new key for ``user_id``; returns the row and the key (shown once, never stored).

    With ``max_keys`` (setting ``max_api_keys_per_user``) a user who already has that
    many unrevoked keys gets 409 ``QUOTA_EXCEEDED``.
    """
    check_scopes(scopes)
    if max_keys:
        lock_user(db, user_id=user_id)
        check_api_key_quota(db, user_id=user_id, max_keys=max_keys)
    key = generate_api_key()
    row = ApiKey(
        user_id=user_id,
        name=name,
        prefix=display_prefix(key),
        key_hash=hash_secret(key),
        scopes=list(dict.fromkeys(scopes)),
    )
    db.add(row)
    db.commit()
    return row, key


def check_scopes(scopes: Sequence[str]) -> None:
    """400 ``INVALID_SCOPES`` unless ``scopes`` is a non-empty list of ``VALID_SCOPES``."""
    valid = ", ".join(VALID_SCOPES)
    if not scopes:
        raise ApiError(400, "INVALID_SCOPES", f"Give at least one scope; valid scopes: {valid}")
    unknown = [scope[:40] for scope in dict.fromkeys(scopes) if scope not in VALID_SCOPES]
    if unknown:
        hint = " ('worker' is now 'training')" if "worker" in unknown else ""
        message = f"Invalid scopes: {', '.join(unknown)}{hint}; valid scopes: {valid}"
        raise ApiError(400, "INVALID_SCOPES", message, extra={"valid_scopes": list(VALID_SCOPES)})


def list_api_keys(db: Session, *, user_id: str) -> list[ApiKey]:
    """The user's active (unrevoked) keys, newest first."""
    return list(
        db.scalars(
            select(ApiKey)
            .where(ApiKey.user_id == user_id)
            .where(ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.created_at.desc(), ApiKey.id)
        )
    )


def revoke_user_api_key(db: Session, *, user_id: str, key_id: str, now: datetime) -> ApiKey:
    """Revoke one of the user's keys (idempotent); 404 ``KEY_NOT_FOUND`` for any other id.

    The job tokens of the jobs claimed with the key (or by the agent it is bound to)
    are revoked with it.
    """
    row = db.scalar(select(ApiKey).where(ApiKey.id == key_id).where(ApiKey.user_id == user_id))
    if row is None:
        raise ApiError(404, "KEY_NOT_FOUND", "API key not found")
    if row.revoked_at is None:
        row.revoked_at = now
        _revoke_its_jobs(db, row=row, now=now)
        announce(db, [Signal.key(user_id, row.id)])  # held polls elsewhere answer 401
        db.commit()
    return row


def _revoke_its_jobs(db: Session, *, row: ApiKey, now: datetime) -> None:
    revoke_job_tokens(db, user_id=row.user_id, key_id=row.id, agent_id=row.agent_id, now=now)


def extract_api_key(headers: Mapping[str, str]) -> str:
    """The key a request carries: ``X-API-Key``, ``X-Workspace-API-Key``, then Bearer."""
    for name in ("x-api-key", "x-workspace-api-key"):
        if value := headers.get(name, "").strip():
            return value
    match = _BEARER.match(headers.get("authorization", "").strip())
    if match is None:
        raise _unauthorized("MISSING_AUTHORIZATION", "Missing authorization header")
    return match.group(1).strip()


def uses_api_key(headers: Mapping[str, str]) -> bool:
    """True when a request authenticates with an API key rather than a session.

    As in FineTune Lab: an ``X-API-Key`` or ``X-Workspace-API-Key`` header, or a bearer
    value that starts with ``wak_``.
    """
    if headers.get("x-api-key", "").strip() or headers.get("x-workspace-api-key", "").strip():
        return True
    match = _BEARER.match(headers.get("authorization", "").strip())
    return match is not None and match.group(1).strip().startswith(API_KEY_PREFIX)


def authenticate_api_key(db: Session, *, key: str, scope: str, now: datetime) -> ApiKey:
    """The stored, unrevoked key matching ``key`` and granting ``scope`` (else 401/403)."""
    if not is_api_key_format(key):
        raise _unauthorized("INVALID_API_KEY_FORMAT", "Invalid API key format")
    row = db.scalar(select(ApiKey).where(ApiKey.key_hash == hash_secret(key)))
    if row is None or row.revoked_at is not None:
        if row is not None and _agent_revoked(db, row):
            raise ApiError(403, "AGENT_REVOKED", REVOKED_MESSAGE)
        raise _unauthorized("INVALID_API_KEY", "Invalid API key")
    require_scope(row, scope)
    _touch(db, row=row, now=now)
    return row


def _agent_revoked(db: Session, row: ApiKey) -> bool:
    # A key revoked with its agent says so, so the agent stops (exit 4) rather than
    # waiting for a new key.
    if row.agent_id is None:
        return False
    revoked_at = db.scalar(
        select(TrainingAgent.revoked_at)
        .where(TrainingAgent.user_id == row.user_id)
        .where(TrainingAgent.agent_id == row.agent_id)
    )
    return revoked_at is not None


class KeyGrants(Protocol):
    """What a key grants: its scopes, and the agent an enrollment bound it to."""

    @property
    def scopes(self) -> Sequence[str]: ...

    @property
    def agent_id(self) -> str | None: ...


def require_agent(row: KeyGrants, agent_id: str | None) -> None:
    """403 ``KEY_BOUND_TO_AGENT`` when an enrolled agent's key speaks for another agent."""
    if row.agent_id is None or agent_id is None or agent_id == row.agent_id:
        return
    message = (
        f"This API key belongs to agent {row.agent_id}; "
        "download the agent again from the Training Agent page to enroll this one"
    )
    raise ApiError(403, "KEY_BOUND_TO_AGENT", message)


def require_scope(row: KeyGrants, scope: str) -> None:
    """403 ``INSUFFICIENT_SCOPE`` unless the key grants ``scope`` (``all`` grants any)."""
    if "all" in row.scopes or scope in row.scopes:
        return
    listed = ", ".join(row.scopes)
    message = f"API key does not have '{scope}' scope. Key scopes: {listed}"
    raise ApiError(403, "INSUFFICIENT_SCOPE", message)


def _touch(db: Session, *, row: ApiKey, now: datetime) -> None:
    # Conditional, so concurrent requests of one key write at most once per resolution.
    if row.last_used_at is not None and now - row.last_used_at < LAST_USED_RESOLUTION:
        return
    stale = now - LAST_USED_RESOLUTION
    db.execute(
        update(ApiKey)
        .where(ApiKey.id == row.id)
        .where(or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= stale))
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    db.commit()
    row.last_used_at = now


def revoke_api_key(db: Session, *, key_id: str) -> None:
    """Mark a key revoked; its next request is answered 401 ``INVALID_API_KEY``.

    The job tokens of the jobs claimed with it are revoked too.
    """
    row = db.get(ApiKey, key_id)
    if row is None or row.revoked_at is not None:
        return
    now = utcnow()
    row.revoked_at = now
    _revoke_its_jobs(db, row=row, now=now)
    db.commit()
