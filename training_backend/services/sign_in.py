"""Signing in with a name and a password: a throttled check, then a new session.

Every wrong name or password gets the same 401 sentence, so the answer never tells
which of the two was wrong, and repeated tries at one name from one address, or from one
address at all, are slowed down (429 ``LOGIN_THROTTLED``, see ``ratelimit.LoginThrottle``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from training_backend.db.models import User, UserSession
from training_backend.errors import ApiError
from training_backend.ratelimit import LoginThrottle
from training_backend.services.sessions import create_session
from training_backend.services.users import authenticate_password

INVALID_CREDENTIALS = "Invalid user name or password"


@dataclass(frozen=True)
class SignedIn:
    """A user who just signed in, the new session and its token (shown once)."""

    user: User
    session: UserSession
    token: str


def sign_in(
    db: Session,
    *,
    name: str,
    password: str,
    address: str,
    throttle: LoginThrottle,
    now: datetime,
    lifetime: timedelta,
) -> SignedIn:
    """A new session of the user ``name`` if ``password`` is theirs (401 otherwise)."""
    throttle.attempt(name=name, address=address)  # spent before the check: no race
    user = authenticate_password(db, name=name, password=password)
    if user is None:
        raise ApiError(401, "INVALID_CREDENTIALS", INVALID_CREDENTIALS)
    throttle.succeeded(name=name, address=address)
    session, token = create_session(db, user_id=user.id, now=now, lifetime=lifetime)
    return SignedIn(user, session, token)
