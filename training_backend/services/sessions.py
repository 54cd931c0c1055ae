"""Web sign-in sessions: a random token handed out once, stored only as its SHA-256.

A token is ``sess_`` + 43 URL-safe characters (256 bits). It is sent back either as
``Authorization: Bearer sess_…`` (API calls) or in the ``training_backend_session``
cookie (pages). Like API keys it is found by its hash through a unique index, so
checking one costs one lookup; the hash is then compared in constant time.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from fastapi import Request, Response
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from training_backend.db.models import User, UserSession
from training_backend.errors import ApiError
from training_backend.security import hash_secret, secret_matches
from training_backend.settings import BackendSettings

SESSION_TOKEN_PREFIX = "sess_"
SESSION_COOKIE = "training_backend_session"
_TOKEN_PATTERN = re.compile(rf"^{SESSION_TOKEN_PREFIX}[A-Za-z0-9_-]{{43}}$")
_BEARER = re.compile(r"^Bearer\s+(.+)$", re.IGNORECASE)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def generate_session_token() -> str:
    """A new session token: ``sess_`` + 32 random bytes in base64url."""
    return SESSION_TOKEN_PREFIX + secrets.token_urlsafe(32)


def session_unauthorized(message: str = "Sign in to continue") -> ApiError:
    """401 ``UNAUTHENTICATED``: the route needs a signed-in user."""
    return ApiError(401, "UNAUTHENTICATED", message, headers={"WWW-Authenticate": "Bearer"})


def bearer_value(headers: Mapping[str, str]) -> str | None:
    """The value of ``Authorization: Bearer …``, if the request has one."""
    match = _BEARER.match(headers.get("authorization", "").strip())
    return None if match is None else match.group(1).strip()


def session_token_of(request: Request, *, public_url: str | None) -> str:
    """The session token a request carries: the bearer value, else the cookie.

    401 ``UNAUTHENTICATED`` without one, or when the bearer is an API key (these routes
    are for people, not agents). 403 ``CROSS_SITE_REQUEST`` for a cookie on a
    state-changing request whose ``Origin`` is another site (``public_url``, the
    backend's configured URL, counts as this site).
    """
    bearer = bearer_value(request.headers)
    if bearer is not None:
        if bearer.startswith("wak_"):
            raise session_unauthorized("This endpoint needs a signed-in user, not an API key")
        return bearer
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise session_unauthorized()
    if request.method not in _SAFE_METHODS:
        refuse_cross_site(request, public_url=public_url)
    return cookie


def refuse_cross_site(request: Request, *, public_url: str | None) -> None:
    """403 ``CROSS_SITE_REQUEST`` when a browser sent ``request`` from another site's page.

    Cookie-authenticated writes call this, and so does sign-in: a hostile page must not
    sign a visitor in to the attacker's account either (login CSRF).
    """
    if not _same_origin(request, public_url):
        message = "Cross-site request refused; use the page served by this backend"
        raise ApiError(403, "CROSS_SITE_REQUEST", message)


def secure_cookies(request: Request, settings: BackendSettings) -> bool:
    """Whether cookies get ``Secure``: over https, or always with ``cookie_secure``."""
    return settings.cookie_secure or request.url.scheme == "https"


def set_session_cookie(
    response: Response, token: str, *, lifetime: timedelta, secure: bool
) -> None:
    """Hand the browser its session: HttpOnly, SameSite=Lax, Secure over https."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(lifetime.total_seconds()),
        path="/",
        secure=secure,
        httponly=True,
        samesite="lax",
    )


def _same_origin(request: Request, public_url: str | None) -> bool:
    # SameSite=Lax already keeps the cookie off cross-site POSTs in current browsers;
    # this also covers older browsers and sibling subdomains. Behind a proxy that
    # rewrites Host, the configured public URL is this site too.
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-origin request (or a same-origin GET form)
    ours = {request.headers.get("host", "").lower()}
    if public_url:
        ours.add(urlsplit(public_url).netloc.lower())
    return urlsplit(origin).netloc.lower() in ours


def create_session(
    db: Session, *, user_id: str, now: datetime, lifetime: timedelta
) -> tuple[UserSession, str]:
    """A new session of ``user_id`` valid for ``lifetime``; returns it and its token.

    The user's expired and signed-out sessions are deleted on the way.
    """
    db.execute(
        delete(UserSession)
        .where(UserSession.user_id == user_id)
        .where(or_(UserSession.expires_at <= now, UserSession.revoked_at.is_not(None)))
    )
    token = generate_session_token()
    row = UserSession(
        user_id=user_id, token_hash=hash_secret(token), created_at=now, expires_at=now + lifetime
    )
    db.add(row)
    db.commit()
    return row, token


def authenticate_session(db: Session, *, token: str, now: datetime) -> User:
    """The user whose live session ``token`` is (401 ``UNAUTHENTICATED`` otherwise)."""
    if _TOKEN_PATTERN.fullmatch(token) is None:
        raise session_unauthorized("Invalid session token; sign in again")
    found = db.execute(
        select(UserSession, User)
        .join(User, User.id == UserSession.user_id)
        .where(UserSession.token_hash == hash_secret(token))
    ).first()
    if found is None or not secret_matches(token, found[0].token_hash):
        raise session_unauthorized("Invalid session token; sign in again")
    session, user = found
    if session.revoked_at is not None or session.expires_at <= now:
        raise session_unauthorized("Your session has expired; sign in again")
    return user


def end_session(db: Session, *, token: str, now: datetime) -> None:
    """Sign the session out; an unknown or already ended token is left alone."""
    if _TOKEN_PATTERN.fullmatch(token) is None:
        return
    db.execute(
        update(UserSession)
        .where(UserSession.token_hash == hash_secret(token))
        .where(UserSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    db.commit()


def end_all_sessions(db: Session, *, user_id: str, now: datetime) -> int:
    """Sign the user out everywhere (every browser, every token); returns how many ended.

    A password change does this too, so a stolen session dies with the old password.
    """
    result = db.execute(
        update(UserSession)
        .where(UserSession.user_id == user_id)
        .where(UserSession.revoked_at.is_(None))
        .where(UserSession.expires_at > now)
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    db.commit()
    return int(getattr(result, "rowcount", 0) or 0)
