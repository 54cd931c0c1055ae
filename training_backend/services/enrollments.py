"""Enrollment tokens: made for a signed-in user, spent once by an installer for a key.

A token (``wae_`` + 32 base62) rides inside an agent download. The installer sends it
to ``POST /api/training/agent/enroll`` and gets a ``training`` API key bound to its
agent id. Spending is one conditional ``UPDATE … WHERE used_at IS NULL AND revoked_at
IS NULL AND expires_at > now RETURNING``: the database applies the guard atomically on
SQLite (one writer at a time) and PostgreSQL (the second writer re-checks the row after
the first commits), so of any number of racing installers exactly one gets a key. The
key is created in the same transaction, so a failure after the spend gives the token
back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from training_backend.db.models import ApiKey, EnrollmentToken
from training_backend.errors import ApiError
from training_backend.security import (
    display_prefix,
    generate_api_key,
    generate_enrollment_token,
    hash_secret,
    is_enrollment_token_format,
)
from training_backend.services.agents import ensure_agent_allowed
from training_backend.services.quotas import check_enrollment_quota, lock_user

#: Every refusal ends with this: the only fix is a fresh download.
DOWNLOAD_AGAIN = "download the agent again from the Training Agent page"
#: Spent, revoked and expired tokens are kept this long for the list, then deleted.
KEPT_FOR = timedelta(days=7)
MAX_LISTED = 100
_WWW_AUTHENTICATE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Enrolled:
    """What a spent token made: the new key (shown once) and its row."""

    api_key: str
    key_row: ApiKey


def create_enrollment(
    db: Session, *, user_id: str, now: datetime, ttl: timedelta, max_pending: int = 0
) -> tuple[EnrollmentToken, str]:
    """A new token of ``user_id`` valid for ``ttl``; returns the row and the token.

    The user's tokens that ended more than ``KEPT_FOR`` ago are deleted on the way. With
    ``max_pending`` (setting ``max_pending_enrollments_per_user``) a user who already has
    that many unused, unexpired tokens gets 409 ``QUOTA_EXCEEDED``.
    """
    if max_pending:
        lock_user(db, user_id=user_id)
        check_enrollment_quota(db, user_id=user_id, max_pending=max_pending, now=now)
    _forget_old(db, user_id=user_id, now=now)
    token = generate_enrollment_token()
    row = EnrollmentToken(
        user_id=user_id,
        prefix=display_prefix(token),
        token_hash=hash_secret(token),
        created_at=now,
        expires_at=now + ttl,
    )
    db.add(row)
    db.commit()
    return row, token


def _forget_old(db: Session, *, user_id: str, now: datetime) -> None:
    cutoff = now - KEPT_FOR
    db.execute(
        delete(EnrollmentToken)
        .where(EnrollmentToken.user_id == user_id)
        .where(
            or_(
                EnrollmentToken.expires_at < cutoff,
                EnrollmentToken.revoked_at < cutoff,
                EnrollmentToken.used_at < cutoff,
            )
        )
    )


def list_enrollments(db: Session, *, user_id: str) -> list[EnrollmentToken]:
    """The user's tokens of the last ``KEPT_FOR``, newest first (at most ``MAX_LISTED``)."""
    return list(
        db.scalars(
            select(EnrollmentToken)
            .where(EnrollmentToken.user_id == user_id)
            .order_by(EnrollmentToken.created_at.desc(), EnrollmentToken.id)
            .limit(MAX_LISTED)
        )
    )


def revoke_enrollment(
    db: Session, *, user_id: str, enrollment_id: str, now: datetime
) -> EnrollmentToken:
    """Revoke an unspent token of the user (idempotent; a spent one stays as it is).

    404 ``ENROLLMENT_NOT_FOUND`` for any other id.
    """
    row = db.scalar(
        select(EnrollmentToken)
        .where(EnrollmentToken.id == enrollment_id)
        .where(EnrollmentToken.user_id == user_id)
    )
    if row is None:
        raise ApiError(404, "ENROLLMENT_NOT_FOUND", "Enrollment not found")
    if row.revoked_at is None and row.used_at is None:
        row.revoked_at = now
        db.commit()
    return row


def spend_enrollment(
    db: Session, *, token: str, agent_id: str, hostname: str | None, now: datetime
) -> Enrolled:
    """Trade ``token`` for a new ``training`` key bound to ``agent_id``, exactly once.

    401 with a sentence saying to download again for a malformed, unknown, spent,
    revoked or expired token; 403 ``AGENT_REVOKED`` (token kept) for a revoked agent.
    """
    if not is_enrollment_token_format(token):
        raise _refused("INVALID_ENROLLMENT_TOKEN", "This is not an enrollment token")
    token_hash = hash_secret(token)
    spent = db.scalars(
        update(EnrollmentToken)
        .where(EnrollmentToken.token_hash == token_hash)
        .where(EnrollmentToken.used_at.is_(None))
        .where(EnrollmentToken.revoked_at.is_(None))
        .where(EnrollmentToken.expires_at > now)
        .values(used_at=now, agent_id=agent_id, hostname=hostname)
        .returning(EnrollmentToken)
    ).one_or_none()
    if spent is None:
        db.rollback()
        raise _why_refused(db, token_hash)
    try:
        ensure_agent_allowed(db, user_id=spent.user_id, agent_id=agent_id)
        enrolled = _bound_key(db, row=spent, agent_id=agent_id, hostname=hostname)
    except BaseException:
        db.rollback()  # the token is not spent after all
        raise
    db.commit()
    return enrolled


def _bound_key(
    db: Session, *, row: EnrollmentToken, agent_id: str, hostname: str | None
) -> Enrolled:
    key = generate_api_key()
    key_row = ApiKey(
        user_id=row.user_id,
        name=(hostname or agent_id)[:200],
        prefix=display_prefix(key),
        key_hash=hash_secret(key),
        scopes=["training"],
        agent_id=agent_id,
    )
    db.add(key_row)
    db.flush()  # assigns the key's id
    row.api_key_id = key_row.id
    return Enrolled(api_key=key, key_row=key_row)


def _why_refused(db: Session, token_hash: str) -> ApiError:
    row = db.scalar(select(EnrollmentToken).where(EnrollmentToken.token_hash == token_hash))
    db.rollback()
    if row is None:
        return _refused("INVALID_ENROLLMENT_TOKEN", "This enrollment token is not known here")
    if row.used_at is not None:
        return _refused("ENROLLMENT_TOKEN_USED", "This enrollment token was already used")
    if row.revoked_at is not None:
        return _refused("ENROLLMENT_TOKEN_REVOKED", "This enrollment token was revoked")
    return _refused("ENROLLMENT_TOKEN_EXPIRED", "This enrollment token has expired")


def _refused(code: str, reason: str) -> ApiError:
    return ApiError(401, code, f"{reason}; {DOWNLOAD_AGAIN}", headers=_WWW_AUTHENTICATE)


def enrollment_state(row: EnrollmentToken, *, now: datetime) -> str:
    """``pending``, ``used``, ``revoked`` or ``expired``."""
    if row.used_at is not None:
        return "used"
    if row.revoked_at is not None:
        return "revoked"
    return "pending" if row.expires_at > now else "expired"
