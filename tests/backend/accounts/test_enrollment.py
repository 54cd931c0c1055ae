"""Enrollment tokens: made by a signed-in user, traded once for an agent-bound key.

Runs on SQLite and PostgreSQL (the ``settings`` fixture is parametrized over both).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tests.backend.accounts.conftest import MakeMember, Member
from training_backend.db.models import ApiKey, EnrollmentToken
from training_backend.db.types import utcnow
from training_backend.ratelimit import AddressRateLimit
from training_backend.security import hash_secret

ENROLLMENTS = "/api/workers/enrollments"
ENROLL = "/api/training/agent/enroll"
POLL = "/api/training/agent/poll"
AGENT = "agent_0123456789abcdef"
DOWNLOAD_AGAIN = "download the agent again from the Training Agent page"


async def new_token(client: httpx.AsyncClient, member: Member) -> dict[str, Any]:
    response = await client.post(ENROLLMENTS, headers=member.headers())
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def enrolled_key(client: httpx.AsyncClient, member: Member) -> str:
    """The key a new token of ``member`` is traded for (for ``AGENT``)."""
    token = (await new_token(client, member))["token"]
    answer = await client.post(ENROLL, json=body(token))
    assert answer.status_code == 201, answer.text
    key: str = answer.json()["api_key"]
    return key


def body(token: str, agent_id: str = AGENT, **extra: str) -> dict[str, str]:
    return {"token": token, "agent_id": agent_id, "hostname": "gpu-box", **extra}


def agent_headers(key: str, agent_id: str = AGENT) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "X-Agent-ID": agent_id}


async def test_a_token_is_traded_once_for_a_training_key_bound_to_the_agent(
    client: httpx.AsyncClient, member: Member, db: Session
) -> None:
    created = await new_token(client, member)
    token = created["token"]
    assert token.startswith("wae_") and len(token) == 36
    assert created["backend_url"] == "http://backend.test"
    assert created["enrollment"]["status"] == "pending"
    assert created["enrollment"]["token_prefix"] == token[:12]
    lifetime = created["enrollment"]["expires_at"], created["enrollment"]["created_at"]
    assert lifetime[0] > lifetime[1]

    answer = await client.post(
        ENROLL, json=body(token, platform="linux", version="0.2.0"), headers={"X-Agent-ID": "x"}
    )

    assert answer.status_code == 201, answer.text
    enrolled = answer.json()
    assert enrolled["api_key"].startswith("wak_") and enrolled["name"] == "gpu-box"
    assert (enrolled["agent_id"], enrolled["backend_url"]) == (AGENT, "http://backend.test")
    row = db.scalar(select(ApiKey).where(ApiKey.key_hash == hash_secret(enrolled["api_key"])))
    assert row is not None and (row.scopes, row.agent_id) == (["training"], AGENT)
    assert db.scalar(select(EnrollmentToken.token_hash)) == hash_secret(token)  # never the token
    poll = await client.get(POLL, headers=agent_headers(enrolled["api_key"]))
    assert poll.status_code == 200
    [listed] = (await client.get(ENROLLMENTS, headers=member.headers())).json()["enrollments"]
    assert (listed["status"], listed["agent_id"], listed["hostname"]) == ("used", AGENT, "gpu-box")
    keys = (await client.get("/api/user/api-keys", headers=member.headers())).json()
    assert [key["name"] for key in keys["api_keys"]] == ["gpu-box"]

    again = await client.post(ENROLL, json=body(token, "agent_another00001"))
    assert (again.status_code, again.json()["code"]) == (401, "ENROLLMENT_TOKEN_USED")
    assert again.json()["error"].endswith(DOWNLOAD_AGAIN)


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("wae_" + "A" * 32, "INVALID_ENROLLMENT_TOKEN"),  # well formed, never issued
        ("wae_short", "INVALID_ENROLLMENT_TOKEN"),
        ("wak_" + "A" * 32, "INVALID_ENROLLMENT_TOKEN"),
        ("", "INVALID_ENROLLMENT_TOKEN"),
    ],
)
async def test_forged_and_malformed_tokens_are_401_saying_to_download_again(
    client: httpx.AsyncClient, member: Member, db: Session, token: str, code: str
) -> None:
    await new_token(client, member)
    answer = await client.post(ENROLL, json=body(token))
    assert (answer.status_code, answer.json()["code"]) == (401, code)
    assert answer.json()["error"].endswith(DOWNLOAD_AGAIN)
    assert db.scalars(select(ApiKey)).all() == []


async def test_an_expired_token_is_refused(
    client: httpx.AsyncClient, member: Member, db: Session
) -> None:
    token = (await new_token(client, member))["token"]
    db.execute(update(EnrollmentToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    db.commit()

    answer = await client.post(ENROLL, json=body(token))

    assert (answer.status_code, answer.json()["code"]) == (401, "ENROLLMENT_TOKEN_EXPIRED")
    listed = (await client.get(ENROLLMENTS, headers=member.headers())).json()
    assert listed["enrollments"][0]["status"] == "expired"


async def test_the_lifetime_is_the_enrollment_ttl_setting(
    app: FastAPI, client: httpx.AsyncClient, member: Member, db: Session
) -> None:
    app.state.settings = app.state.settings.model_copy(update={"enrollment_ttl_minutes": 5})
    await new_token(client, member)
    row = db.scalars(select(EnrollmentToken)).one()
    assert row.expires_at - row.created_at == timedelta(minutes=5)
    listed = (await client.get(ENROLLMENTS, headers=member.headers())).json()
    assert listed["ttl_minutes"] == 5


async def test_a_revoked_token_is_refused_and_only_its_owner_can_revoke_it(
    client: httpx.AsyncClient, member: Member, make_member: MakeMember
) -> None:
    created = await new_token(client, member)
    path = f"{ENROLLMENTS}/{created['enrollment']['id']}"
    other = await client.delete(path, headers=make_member().headers())
    assert (other.status_code, other.json()["code"]) == (404, "ENROLLMENT_NOT_FOUND")

    revoked = await client.delete(path, headers=member.headers())
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"

    answer = await client.post(ENROLL, json=body(created["token"]))
    assert (answer.status_code, answer.json()["code"]) == (401, "ENROLLMENT_TOKEN_REVOKED")


async def test_revoking_the_agent_revokes_its_key_and_enabling_gives_it_back(
    client: httpx.AsyncClient, member: Member
) -> None:
    key = await enrolled_key(client, member)
    assert (await client.get(POLL, headers=agent_headers(key))).status_code == 200

    await client.delete(f"/api/training/agents/{AGENT}", headers=member.headers())

    refused = await client.get(POLL, headers=agent_headers(key))
    assert (refused.status_code, refused.json()["code"]) == (403, "AGENT_REVOKED")
    keys = (await client.get("/api/user/api-keys", headers=member.headers())).json()
    assert keys["api_keys"] == []  # revoked keys are not listed
    await client.post(f"/api/training/agents/{AGENT}/enable", headers=member.headers())
    assert (await client.get(POLL, headers=agent_headers(key))).status_code == 200


async def test_a_key_revoked_on_its_own_stays_revoked_when_the_agent_is_enabled(
    client: httpx.AsyncClient, member: Member
) -> None:
    key = await enrolled_key(client, member)
    await client.get(POLL, headers=agent_headers(key))
    [listed] = (await client.get("/api/user/api-keys", headers=member.headers())).json()["api_keys"]
    await client.delete(f"/api/user/api-keys/{listed['id']}", headers=member.headers())
    await client.delete(f"/api/training/agents/{AGENT}", headers=member.headers())
    await client.post(f"/api/training/agents/{AGENT}/enable", headers=member.headers())

    answer = await client.get(POLL, headers=agent_headers(key))

    assert (answer.status_code, answer.json()["code"]) == (401, "INVALID_API_KEY")


async def test_a_bound_key_speaks_for_its_agent_only(
    client: httpx.AsyncClient, member: Member
) -> None:
    key = await enrolled_key(client, member)

    answer = await client.get(POLL, headers=agent_headers(key, "agent_someoneelse1"))

    assert (answer.status_code, answer.json()["code"]) == (403, "KEY_BOUND_TO_AGENT")
    assert AGENT in answer.json()["error"]


async def test_a_revoked_agent_cannot_enroll_again_and_the_token_stays_usable(
    client: httpx.AsyncClient, member: Member
) -> None:
    key = await enrolled_key(client, member)
    await client.get(POLL, headers=agent_headers(key))
    await client.delete(f"/api/training/agents/{AGENT}", headers=member.headers())
    second = (await new_token(client, member))["token"]

    refused = await client.post(ENROLL, json=body(second))
    assert (refused.status_code, refused.json()["code"]) == (403, "AGENT_REVOKED")
    other = await client.post(ENROLL, json=body(second, "agent_fresh000000001"))
    assert other.status_code == 201


@pytest.mark.parametrize(
    "payload",
    [{"token": "wae_x"}, {"token": "wae_x", "agent_id": "robot_123456"}, {"agent_id": AGENT}],
)
async def test_a_body_without_a_valid_agent_id_or_token_is_400(
    client: httpx.AsyncClient, payload: dict[str, str]
) -> None:
    answer = await client.post(ENROLL, json=payload)
    assert (answer.status_code, answer.json()["code"]) == (400, "INVALID_REQUEST")


async def test_creating_listing_and_revoking_need_a_session(client: httpx.AsyncClient) -> None:
    for method, path in [
        ("POST", ENROLLMENTS),
        ("GET", ENROLLMENTS),
        ("DELETE", f"{ENROLLMENTS}/x"),
    ]:
        answer = await client.request(method, path)
        assert (answer.status_code, answer.json()["code"]) == (401, "UNAUTHENTICATED")


async def test_enrollment_is_rate_limited_per_address(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    app.state.enroll_rate_limit = AddressRateLimit(per_minute=6, burst=2, clock=lambda: 0.0)
    answers = [await client.post(ENROLL, json=body("wae_" + "B" * 32)) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [401, 401, 429]
    assert answers[2].headers["retry-after"] == "10"
    assert answers[2].json()["code"] == "RATE_LIMITED"
