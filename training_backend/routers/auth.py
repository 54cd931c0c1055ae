"""Signing in and out of the pages and the page-facing API (name and password)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from training_backend.body import json_body, read_json_object_capped, validate
from training_backend.db.types import utcnow
from training_backend.deps import CurrentUser, DbSession, LoginThrottleDep, SettingsDep
from training_backend.errors import ApiError
from training_backend.ratelimit import client_address
from training_backend.routing import DbRoute
from training_backend.schemas.accounts import (
    Done,
    LoginAnswer,
    LoginRequest,
    SessionsEnded,
    UserPublic,
)
from training_backend.services.sessions import (
    SESSION_COOKIE,
    end_all_sessions,
    end_session,
    refuse_cross_site,
    secure_cookies,
    session_token_of,
    set_session_cookie,
)
from training_backend.services.sign_in import sign_in

router = APIRouter(prefix="/api/auth", tags=["auth"], route_class=DbRoute)

MAX_AUTH_BODY_BYTES = 16 * 1024


async def _small_body(request: Request) -> dict[str, Any]:
    return await read_json_object_capped(request, MAX_AUTH_BODY_BYTES)


SmallBody = Annotated[dict[str, Any], Depends(_small_body)]


@router.post("/login", openapi_extra=json_body(LoginRequest))
def login(
    request: Request,
    response: Response,
    body: SmallBody,
    db: DbSession,
    settings: SettingsDep,
    throttle: LoginThrottleDep,
) -> LoginAnswer:
    """Check a name and password; answer a session token and set the session cookie.

    Every wrong name or password gets the same 401 sentence, and repeated tries at one
    name from one address, or from one address at all, are slowed down (429
    ``LOGIN_THROTTLED``). A browser's request from another site's page is refused (403
    ``CROSS_SITE_REQUEST``), so no page can sign a visitor in to another account.
    """
    refuse_cross_site(request, public_url=settings.public_url)
    credentials = validate(LoginRequest, body)
    lifetime = timedelta(hours=settings.session_lifetime_hours)
    signed_in = sign_in(
        db,
        name=credentials.name,
        password=credentials.password,
        address=client_address(request),
        throttle=throttle,
        now=utcnow(),
        lifetime=lifetime,
    )
    secure = secure_cookies(request, settings)
    set_session_cookie(response, signed_in.token, lifetime=lifetime, secure=secure)
    return LoginAnswer(
        token=signed_in.token,
        expires_at=signed_in.session.expires_at,
        user=UserPublic.of(signed_in.user),
    )


@router.post("/logout")
def logout(request: Request, response: Response, db: DbSession, settings: SettingsDep) -> Done:
    """End the caller's session (if any) and clear the cookie; always succeeds."""
    try:
        token = session_token_of(request, public_url=settings.public_url)
    except ApiError as exc:
        if exc.status != 401:
            raise
    else:
        end_session(db, token=token, now=utcnow())
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return Done()


@router.post("/sessions/revoke-all")
def sign_out_everywhere(response: Response, user: CurrentUser, db: DbSession) -> SessionsEnded:
    """End every session of the caller, this one included ("Sign out everywhere")."""
    ended = end_all_sessions(db, user_id=user.id, now=utcnow())
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return SessionsEnded(sessions_ended=ended)


@router.get("/me")
def me(user: CurrentUser) -> UserPublic:
    """Who is signed in."""
    return UserPublic.of(user)
