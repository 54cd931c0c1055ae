"""Single-use sign-in links (``/login/link/<token>``): one session, once, in time."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy.orm import Session

from tests.backend.accounts.conftest import Member
from training_backend.db.types import utcnow
from training_backend.services.sessions import SESSION_COOKIE
from training_backend.services.sign_in_links import USED_OR_EXPIRED, create_sign_in_link


async def test_a_link_signs_in_once_and_lands_on_the_training_agent_page(
    client: httpx.AsyncClient, member: Member, db: Session
) -> None:
    token = create_sign_in_link(db, user_id=member.user.id, now=utcnow(), ttl=timedelta(hours=1))

    first = await client.get(f"/login/link/{token}")

    assert (first.status_code, first.headers["location"]) == (303, "/workers")
    session = first.cookies[SESSION_COOKIE]
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {session}"})
    assert me.json()["name"] == member.user.name
    client.cookies.clear()
    second = await client.get(f"/login/link/{token}")
    assert second.status_code == 401
    assert USED_OR_EXPIRED in second.text
    assert SESSION_COOKIE not in second.cookies


async def test_an_expired_or_made_up_link_signs_nobody_in(
    client: httpx.AsyncClient, member: Member, db: Session
) -> None:
    past = utcnow() - timedelta(hours=2)
    expired = create_sign_in_link(db, user_id=member.user.id, now=past, ttl=timedelta(hours=1))

    for token in (expired, "wsl_" + "x" * 43, "not-a-link"):
        answer = await client.get(f"/login/link/{token}")
        assert answer.status_code == 401, token
        assert USED_OR_EXPIRED in answer.text
