"""Sign-in against a hostile browser and a guesser: JSON only, same site only, spend
before verify, per-name tries counted per address, sign out everywhere."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session

from tests.backend.accounts.conftest import PASSWORD, MakeMember, Member
from training_backend.db.types import utcnow
from training_backend.ratelimit import LoginThrottle
from training_backend.routers.pages import safe_next
from training_backend.services import passwords, users
from training_backend.services.sessions import SESSION_COOKIE, create_session

LOGIN = "/api/auth/login"
ME = "/api/auth/me"


def credentials(member: Member, password: str = PASSWORD) -> dict[str, str]:
    return {"name": member.user.name, "password": password}


async def test_a_text_plain_login_is_415_and_signs_no_one_in(
    client: httpx.AsyncClient, member: Member
) -> None:
    # What a cross-site <form enctype="text/plain"> sends: JSON that parses, but not
    # labelled as JSON, so no browser asked the backend first.
    body = f'{{"name": "{member.user.name}", "password": "{PASSWORD}", "x": "="}}'
    response = await client.post(LOGIN, content=body, headers={"Content-Type": "text/plain"})

    assert response.status_code == 415
    assert response.json() == {
        "error": "Send the request body as JSON with the header Content-Type: application/json",
        "code": "UNSUPPORTED_MEDIA_TYPE",
    }
    assert SESSION_COOKIE not in response.cookies


async def test_a_login_from_another_sites_page_is_refused(
    client: httpx.AsyncClient, member: Member
) -> None:
    foreign = await client.post(
        LOGIN, json=credentials(member), headers={"Origin": "http://evil.example"}
    )
    ours = await client.post(
        LOGIN, json=credentials(member), headers={"Origin": "http://backend.test"}
    )

    assert (foreign.status_code, foreign.json()["code"]) == (403, "CROSS_SITE_REQUEST")
    assert SESSION_COOKIE not in foreign.cookies
    assert ours.status_code == 200


@pytest.mark.parametrize(
    "body",
    [b"[" * 5000, b'{"a": ' * 2500, b'{"name": ' + b"[" * 8000 + b"}", b"[" * 100 + b"]" * 100],
    ids=["open-brackets", "open-objects", "inside-an-object", "deep-but-valid"],
)
async def test_a_body_nested_too_deep_is_400_on_every_kind_of_route(
    client: httpx.AsyncClient, member: Member, body: bytes
) -> None:
    headers = member.headers(**{"Content-Type": "application/json"})
    for path in (LOGIN, "/api/user/api-keys", "/api/training/jobs"):
        response = await client.post(path, content=body, headers=headers)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["code"] == "INVALID_JSON"


async def test_a_json_route_without_a_content_type_is_415(
    client: httpx.AsyncClient, member: Member
) -> None:
    body = b'{"name": "k", "scopes": ["training"]}'
    response = await client.post("/api/user/api-keys", content=body, headers=member.headers())
    assert response.status_code == 415
    labelled = member.headers(**{"Content-Type": "application/json; charset=utf-8"})
    assert (await client.post("/api/user/api-keys", content=body, headers=labelled)).is_success


def test_next_is_a_plain_path_of_this_site() -> None:
    for plain in ["/jobs/42?x=1", "/workers#top", "/a/%2F%2Fb", "/"]:
        assert safe_next(plain) == plain
    tricks = ["/\t/evil.example", "/\n/evil.example", "/\r/evil.example", "/ /evil", "/\\x"]
    tricks += ["/jobs/\x00", "/jobs/é", "//evil.example", "https://evil.example", ""]
    for trick in tricks:
        assert safe_next(trick) == "/workers", trick


async def test_a_signed_in_visitor_is_not_sent_off_site_by_a_tab(
    client: httpx.AsyncClient, member: Member
) -> None:
    client.cookies.set(SESSION_COOKIE, member.token)
    response = await client.get("/login?next=/%09/evil.example")
    assert (response.status_code, response.headers["location"]) == (303, "/workers")


async def test_sign_out_everywhere_ends_every_session(
    client: httpx.AsyncClient, member: Member, db: Session
) -> None:
    _, other = create_session(db, user_id=member.user.id, now=utcnow(), lifetime=timedelta(hours=1))
    client.cookies.set(SESSION_COOKIE, member.token)

    response = await client.post("/api/auth/sessions/revoke-all")

    assert response.status_code == 200
    assert response.json() == {"success": True, "sessions_ended": 2}
    assert 'training_backend_session=""' in response.headers["set-cookie"]
    client.cookies.clear()
    for token in (member.token, other):
        me = await client.get(ME, headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 401


async def test_sign_out_everywhere_needs_a_session_from_this_site(
    client: httpx.AsyncClient, member: Member
) -> None:
    assert (await client.post("/api/auth/sessions/revoke-all")).status_code == 401
    client.cookies.set(SESSION_COOKIE, member.token)
    foreign = await client.post(
        "/api/auth/sessions/revoke-all", headers={"Origin": "http://evil.example"}
    )
    assert foreign.status_code == 403
    assert (await client.get(ME, headers=member.headers())).status_code == 200


async def test_a_new_password_ends_the_old_sessions(
    client: httpx.AsyncClient, member: Member, db: Session, make_member: MakeMember
) -> None:
    bystander = make_member()

    ended = users.set_password(db, user_id=member.user.id, password="a brand new one")

    assert ended == 1
    assert (await client.get(ME, headers=member.headers())).status_code == 401
    assert (await client.get(ME, headers=bystander.headers())).status_code == 200


def addressed(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://backend.test")


async def test_a_stranger_cannot_lock_the_owner_out(app: FastAPI, member: Member) -> None:
    app.state.login_throttle = LoginThrottle(name_burst=3, name_per_minute=1)
    async with addressed(app, "203.0.113.7") as stranger, addressed(app, "198.51.100.2") as owner:
        for _ in range(5):
            await stranger.post(LOGIN, json=credentials(member, "guess"))
        refused = await stranger.post(LOGIN, json=credentials(member))
        signed_in = await owner.post(LOGIN, json=credentials(member))

    assert refused.status_code == 429
    assert signed_in.status_code == 200


async def test_concurrent_wrong_passwords_are_checked_at_most_the_limit(
    app: FastAPI, member: Member, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.state.login_throttle = LoginThrottle(name_burst=10, name_per_minute=1)
    checked = 0
    lock = threading.Lock()
    real_verify = passwords.verify_password

    def slow_verify(password: str, stored: str | None) -> bool:
        nonlocal checked
        with lock:
            checked += 1
        time.sleep(0.3)  # a real hash takes this long: every request is in flight at once
        return real_verify(password, stored)

    monkeypatch.setattr(passwords, "verify_password", slow_verify)
    async with addressed(app, "203.0.113.7") as guesser:
        answers = await asyncio.gather(
            *(guesser.post(LOGIN, json=credentials(member, f"guess {n}")) for n in range(20))
        )

    codes = sorted(answer.status_code for answer in answers)
    assert checked <= 10
    assert codes == [401] * checked + [429] * (20 - checked)
