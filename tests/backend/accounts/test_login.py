"""Sign-in, sessions and sign-out: tokens, cookies, expiry, throttling, no enumeration."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

import httpx
import pytest
from argon2 import PasswordHasher, profiles
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.backend.accounts.conftest import PASSWORD, MakeMember, Member
from tests.backend.support import Caller
from training_backend.db.models import User, UserSession
from training_backend.db.types import utcnow
from training_backend.ratelimit import LoginThrottle
from training_backend.security import hash_secret
from training_backend.services import passwords
from training_backend.services.sessions import SESSION_COOKIE, create_session
from training_backend.services.users import create_user
from training_backend.settings import BackendSettings

LOGIN = "/api/auth/login"
ME = "/api/auth/me"
INVALID = {"error": "Invalid user name or password", "code": "INVALID_CREDENTIALS"}


async def login(client: httpx.AsyncClient, name: str, password: str) -> httpx.Response:
    return await client.post(LOGIN, json={"name": name, "password": password})


async def test_login_answers_a_session_token_and_sets_the_cookie(
    client: httpx.AsyncClient, member: Member, db: Session
) -> None:
    before = utcnow()
    response = await login(client, member.user.name, PASSWORD)

    assert response.status_code == 200
    body = response.json()
    assert body["user"] == {
        "id": member.user.id,
        "name": member.user.name,
        "created_at": body["user"]["created_at"],
    }
    token = body["token"]
    assert token.startswith("sess_") and len(token) == 48
    expires = db.scalar(
        select(UserSession.expires_at).where(UserSession.token_hash == hash_secret(token))
    )
    assert expires is not None
    assert timedelta(hours=167) < expires - before <= timedelta(hours=168, seconds=5)
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}={token};")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here


async def test_the_cookie_is_secure_over_https(app: FastAPI, member: Member) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://backend.test") as https:
        response = await login(https, member.user.name, PASSWORD)
    assert response.status_code == 200
    assert "Secure" in response.headers["set-cookie"]


async def test_only_the_hash_of_a_session_token_is_stored(
    client: httpx.AsyncClient, member: Member, db: Session
) -> None:
    token = (await login(client, member.user.name, PASSWORD)).json()["token"]
    stored = db.scalars(select(UserSession.token_hash)).all()
    assert hash_secret(token) in stored
    assert token not in stored


async def test_the_token_works_as_bearer_and_as_cookie(
    client: httpx.AsyncClient, member: Member
) -> None:
    token = (await login(client, member.user.name, PASSWORD)).json()["token"]

    by_bearer = await client.get(ME, headers={"Authorization": f"Bearer {token}"})
    by_cookie = await client.get(ME)  # the client kept the cookie

    assert by_bearer.status_code == by_cookie.status_code == 200
    assert by_bearer.json()["name"] == by_cookie.json()["name"] == member.user.name


@pytest.mark.parametrize("case", ["wrong password", "unknown user", "no password", "empty"])
async def test_every_failure_is_the_same_sentence(
    client: httpx.AsyncClient, member: Member, db: Session, case: str
) -> None:
    create_user(db, name="keys-only")
    name, password = {
        "wrong password": (member.user.name, "not the password"),
        "unknown user": ("nobody", PASSWORD),
        "no password": ("keys-only", PASSWORD),
        "empty": ("", ""),
    }[case]
    response = await login(client, name, password)
    assert (response.status_code, response.json()) == (401, INVALID)
    assert "set-cookie" not in response.headers


async def test_an_unknown_user_costs_a_password_check_too(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks: list[str] = []
    hasher = passwords.HASHER

    class Counting(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
            checks.append("verify")
            return hasher.verify(hash, password)

    monkeypatch.setattr(passwords, "HASHER", Counting.from_parameters(profiles.CHEAPEST))
    assert (await login(client, "nobody", PASSWORD)).status_code == 401
    assert checks == ["verify"]


async def test_logout_ends_the_session_and_clears_the_cookie(
    client: httpx.AsyncClient, member: Member
) -> None:
    token = (await login(client, member.user.name, PASSWORD)).json()["token"]

    response = await client.post("/api/auth/logout")

    assert response.status_code == 200 and response.json() == {"success": True}
    assert f'{SESSION_COOKIE}=""' in response.headers["set-cookie"]
    after = await client.get(ME, headers={"Authorization": f"Bearer {token}"})
    assert after.status_code == 401
    assert after.json()["code"] == "UNAUTHENTICATED"


async def test_logout_without_a_session_still_succeeds(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/logout")
    assert response.status_code == 200


async def test_an_expired_session_is_refused(
    client: httpx.AsyncClient, member: Member, db: Session
) -> None:
    long_ago = utcnow() - timedelta(days=10)
    _, token = create_session(db, user_id=member.user.id, now=long_ago, lifetime=timedelta(days=1))
    response = await client.get(ME, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json() == {
        "error": "Your session has expired; sign in again",
        "code": "UNAUTHENTICATED",
    }


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, "Sign in to continue"),
        ({"Authorization": "Bearer nonsense"}, "Invalid session token; sign in again"),
        ({"Authorization": "Bearer sess_" + "A" * 43}, "Invalid session token; sign in again"),
    ],
)
async def test_missing_or_unknown_sessions_are_401(
    client: httpx.AsyncClient, headers: dict[str, str], error: str
) -> None:
    response = await client.get(ME, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": error, "code": "UNAUTHENTICATED"}


async def test_an_api_key_is_not_a_session(client: httpx.AsyncClient, caller: Caller) -> None:
    response = await client.get(ME, headers={"Authorization": f"Bearer {caller.key}"})
    assert response.status_code == 401
    assert response.json()["error"] == "This endpoint needs a signed-in user, not an API key"


async def test_a_cross_site_post_with_the_cookie_is_refused(
    client: httpx.AsyncClient, member: Member
) -> None:
    await login(client, member.user.name, PASSWORD)
    body = {"name": "k", "scopes": ["training"]}

    foreign = await client.post(
        "/api/user/api-keys", json=body, headers={"Origin": "https://evil.example"}
    )
    same = await client.post(
        "/api/user/api-keys", json=body, headers={"Origin": "http://backend.test"}
    )

    assert foreign.status_code == 403 and foreign.json()["code"] == "CROSS_SITE_REQUEST"
    assert same.status_code == 201


async def test_behind_a_proxy_the_public_url_is_the_same_site(
    client: httpx.AsyncClient, app: FastAPI, member: Member
) -> None:
    settings: BackendSettings = app.state.settings
    app.state.settings = settings.model_copy(update={"public_url": "https://train.example.com"})
    await login(client, member.user.name, PASSWORD)
    response = await client.post(
        "/api/user/api-keys",
        json={"name": "k"},
        headers={"Origin": "https://train.example.com"},
    )
    assert response.status_code == 201


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_repeated_failures_for_a_name_are_throttled(
    client: httpx.AsyncClient, app: FastAPI, member: Member
) -> None:
    clock = FakeClock()
    app.state.login_throttle = LoginThrottle(name_burst=3, name_per_minute=1, clock=clock)
    for _ in range(3):
        assert (await login(client, member.user.name, "wrong password")).status_code == 401

    throttled = await login(client, member.user.name, PASSWORD)  # even the right one waits

    assert throttled.status_code == 429
    assert throttled.json() == {
        "error": "Too many failed sign-in attempts; wait 60 s and try again",
        "code": "LOGIN_THROTTLED",
    }
    assert throttled.headers["Retry-After"] == "60"
    clock.now += 60
    assert (await login(client, member.user.name, PASSWORD)).status_code == 200


async def test_failures_from_one_address_are_throttled_across_names(
    client: httpx.AsyncClient, app: FastAPI, make_member: MakeMember
) -> None:
    clock = FakeClock()
    app.state.login_throttle = LoginThrottle(address_burst=4, address_per_minute=2, clock=clock)
    for n in range(4):
        assert (await login(client, f"guess{n}", "wrong password")).status_code == 401
    other = make_member()
    response = await login(client, other.user.name, PASSWORD)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "30"


async def test_a_success_clears_the_names_failures(
    client: httpx.AsyncClient, app: FastAPI, member: Member
) -> None:
    app.state.login_throttle = LoginThrottle(name_burst=2, clock=FakeClock())
    await login(client, member.user.name, "wrong password")
    assert (await login(client, member.user.name, PASSWORD)).status_code == 200
    await login(client, member.user.name, "wrong password")
    assert (await login(client, member.user.name, PASSWORD)).status_code == 200


async def test_an_old_hash_is_upgraded_at_sign_in(
    client: httpx.AsyncClient, member: Member, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = db.scalar(select(User.password_hash).where(User.id == member.user.id))
    stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    monkeypatch.setattr(passwords, "HASHER", stronger)

    assert (await login(client, member.user.name, PASSWORD)).status_code == 200

    db.expire_all()
    new = db.scalar(select(User.password_hash).where(User.id == member.user.id))
    assert new != old and new is not None and "m=16,t=2,p=1" in new
    assert (await login(client, member.user.name, PASSWORD)).status_code == 200
