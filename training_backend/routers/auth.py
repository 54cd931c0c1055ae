"""Signing in and out of the pages and the page-facing API (name and password)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from training_backend.body import read_json_object_capped, validate
from training_backend.db.types import utcnow
from training_backend.deps import CurrentUser, DbSession, Settings
from training_backend.errors import ApiError
from training_backend.ratelimit import LoginThrottle, client_address
from training_backend.routing import DbRoute
from training_backend.schemas.accounts import Done, LoginAnswer, LoginRequest, UserPublic
from training_backend.services.sessions import (
    SESSION_COOKIE,
    create_session,
    end_session,
    session_token_of,
)
from training_backend.services.users import authenticate_password

router = APIRouter(prefix="/api/auth", tags=["auth"], route_class=DbRoute)

MAX_AUTH_BODY_BYTES = 16 * 1024
INVALID_CREDENTIALS = "Invalid user name or password"


async def _small_body(request: Request) -> dict[str, Any]:
    return await read_json_object_capped(request, MAX_AUTH_BODY_BYTES)


SmallBody = Annotated[dict[str, Any], Depends(_small_body)]


@router.post("/login")
def login(
    request: Request, response: Response, body: SmallBody, db: DbSession, settings: Settings
) -> LoginAnswer:
    """Check a name and password; answer a session token and set the session cookie.

    Every wrong name or password gets the same 401 sentence, and repeated failures for
    one name or from one address are slowed down (429 ``LOGIN_THROTTLED``).
    """
    credentials = validate(LoginRequest, body)
    throttle: LoginThrottle = request.app.state.login_throttle
    address = client_address(request)
    throttle.check(name=credentials.name, address=address)
    user = authenticate_password(db, name=credentials.name, password=credentials.password)
    if user is None:
        throttle.failed(name=credentials.name, address=address)
        raise ApiError(401, "INVALID_CREDENTIALS", INVALID_CREDENTIALS)
    throttle.succeeded(name=credentials.name)
    lifetime = timedelta(hours=settings.session_lifetime_hours)
    session, token = create_session(db, user_id=user.id, now=utcnow(), lifetime=lifetime)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(lifetime.total_seconds()),
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )
    return LoginAnswer(token=token, expires_at=session.expires_at, user=UserPublic.of(user))


@router.post("/logout")
def logout(request: Request, response: Response, db: DbSession) -> Done:
    """End the caller's session (if any) and clear the cookie; always succeeds."""
    try:
        token = session_token_of(request)
    except ApiError as exc:
        if exc.status != 401:
            raise
    else:
        end_session(db, token=token, now=utcnow())
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return Done()


@router.get("/me")
def me(user: CurrentUser) -> UserPublic:
    """Who is signed in."""
    return UserPublic.of(user)
