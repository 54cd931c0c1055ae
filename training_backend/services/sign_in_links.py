"""Single-use sign-in links: ``/login/link/<token>`` opens one session, once.

``training-agent demo --serve`` prints one so that a newcomer lands on the Training
Agent page signed in, without a password to copy. The token (``wsl_`` + 43 URL-safe
characters, 256 bits) is stored as its SHA-256 and spent by one conditional ``UPDATE …
WHERE used_at IS NULL AND expires_at > now RETURNING``, so a link opened twice (or in
two tabs at once) signs in exactly once.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from training_backend.db.models import SignInLink
from training_backend.errors import ApiError
from training_backend.security import hash_secret

LINK_TOKEN_PREFIX = "wsl_"
LINK_PATH = "/login/link/"
USED_OR_EXPIRED = (
    "This sign-in link was already used or has expired; sign in with your name and password"
)


def create_sign_in_link(db: Session, *, user_id: str, now: datetime, ttl: timedelta) -> str:
    """A new link token of ``user_id``, valid once within ``ttl``."""
    token = LINK_TOKEN_PREFIX + secrets.token_urlsafe(32)
    db.add(
        SignInLink(
            user_id=user_id, token_hash=hash_secret(token), created_at=now, expires_at=now + ttl
        )
    )
    db.commit()
    return token


def spend_sign_in_link(db: Session, *, token: str, now: datetime) -> str:
    """The user id of an unused, unexpired link, which is now used; 401 otherwise."""
    if not token.startswith(LINK_TOKEN_PREFIX) or len(token) > 100:
        raise ApiError(401, "INVALID_SIGN_IN_LINK", USED_OR_EXPIRED)
    user_id = db.scalars(
        update(SignInLink)
        .where(SignInLink.token_hash == hash_secret(token))
        .where(SignInLink.used_at.is_(None))
        .where(SignInLink.expires_at > now)
        .values(used_at=now)
        .returning(SignInLink.user_id)
    ).one_or_none()
    if user_id is None:
        db.rollback()
        raise ApiError(401, "INVALID_SIGN_IN_LINK", USED_OR_EXPIRED)
    db.commit()
    return user_id
