"""The signed-in user's API keys: create once-shown keys, list them, revoke them."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.backend.accounts.conftest import MakeMember, Member
from tests.backend.support import AGENT_ID
from training_backend.db.models import ApiKey
from training_backend.security import hash_secret

KEYS = "/api/user/api-keys"
POLL = "/api/training/agent/poll"


async def create(client: httpx.AsyncClient, member: Member, **body: object) -> httpx.Response:
    return await client.post(KEYS, json={"name": "laptop"} | body, headers=member.headers())


async def test_a_new_key_is_shown_once_and_works_for_polling(
    client: httpx.AsyncClient, member: Member, db: Session
) -> None:
    response = await create(client, member, scopes=["training"])

    assert response.status_code == 201
    body = response.json()
    created = body["apiKey"]
    key = created["key"]
    assert body["success"] is True and "only once" in body["message"]
    assert key.startswith("wak_") and len(key) == 36
    assert created["key_prefix"] == key[:12]
    assert (created["name"], created["scopes"], created["is_active"]) == (
        "laptop",
        ["training"],
        True,
    )
    assert db.scalar(select(ApiKey.key_hash).where(ApiKey.id == created["id"])) == hash_secret(key)
    poll = await client.get(
        POLL, headers={"Authorization": f"Bearer {key}", "X-Agent-ID": AGENT_ID}
    )
    assert poll.status_code == 200


async def test_scopes_default_to_training(client: httpx.AsyncClient, member: Member) -> None:
    response = await create(client, member)
    assert response.json()["apiKey"]["scopes"] == ["training"]


@pytest.mark.parametrize(
    ("scopes", "error"),
    [
        (
            ["worker"],
            "Invalid scopes: worker ('worker' is now 'training'); "
            "valid scopes: all, training, production, testing",
        ),
        (
            ["training", "root"],
            "Invalid scopes: root; valid scopes: all, training, production, testing",
        ),
        ([], "Give at least one scope; valid scopes: all, training, production, testing"),
    ],
)
async def test_invalid_scopes_are_400_listing_the_valid_ones(
    client: httpx.AsyncClient, member: Member, scopes: list[str], error: str
) -> None:
    response = await create(client, member, scopes=scopes)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert response.json()["code"] == "INVALID_SCOPES"


async def test_the_list_never_shows_a_key_or_its_hash(
    client: httpx.AsyncClient, member: Member
) -> None:
    first = (await create(client, member, name="first")).json()["apiKey"]
    second = (await create(client, member, name="second", scopes=["all"])).json()["apiKey"]

    response = await client.get(KEYS, headers=member.headers())

    assert response.status_code == 200
    listed = response.json()["api_keys"]
    assert [row["name"] for row in listed] == ["second", "first"]
    assert set(listed[0]) == {
        "id",
        "name",
        "key_prefix",
        "scopes",
        "created_at",
        "last_used_at",
        "is_active",
    }
    text = response.text
    for key in (first, second):
        assert key["key"] not in text and hash_secret(key["key"]) not in text


async def test_last_used_at_shows_in_the_list(client: httpx.AsyncClient, member: Member) -> None:
    key = (await create(client, member)).json()["apiKey"]["key"]
    await client.get(POLL, headers={"Authorization": f"Bearer {key}", "X-Agent-ID": AGENT_ID})
    [row] = (await client.get(KEYS, headers=member.headers())).json()["api_keys"]
    assert row["last_used_at"] is not None


async def test_revoking_a_key_stops_it_and_drops_it_from_the_list(
    client: httpx.AsyncClient, member: Member
) -> None:
    created = (await create(client, member)).json()["apiKey"]
    agent = {"Authorization": f"Bearer {created['key']}", "X-Agent-ID": AGENT_ID}

    response = await client.delete(f"{KEYS}/{created['id']}", headers=member.headers())
    again = await client.delete(f"{KEYS}/{created['id']}", headers=member.headers())

    assert response.status_code == again.status_code == 200
    assert (await client.get(KEYS, headers=member.headers())).json()["api_keys"] == []
    poll = await client.get(POLL, headers=agent)
    assert poll.status_code == 401 and poll.json()["code"] == "INVALID_API_KEY"


async def test_another_users_keys_are_invisible_and_untouchable(
    client: httpx.AsyncClient, member: Member, make_member: MakeMember
) -> None:
    theirs = (await create(client, member)).json()["apiKey"]
    other = make_member()

    listed = await client.get(KEYS, headers=other.headers())
    revoke = await client.delete(f"{KEYS}/{theirs['id']}", headers=other.headers())
    unknown = await client.delete(f"{KEYS}/no-such-id", headers=other.headers())

    assert listed.json()["api_keys"] == []
    assert (revoke.status_code, revoke.json()) == (
        404,
        {"error": "API key not found", "code": "KEY_NOT_FOUND"},
    )
    assert unknown.json() == revoke.json()
    poll = await client.get(
        POLL, headers={"Authorization": f"Bearer {theirs['key']}", "X-Agent-ID": AGENT_ID}
    )
    assert poll.status_code == 200


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_keys_need_a_session_not_an_api_key(
    client: httpx.AsyncClient, member: Member, method: str
) -> None:
    key = (await create(client, member)).json()["apiKey"]["key"]
    response = await client.request(
        method, KEYS, json={"name": "x"}, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 401


async def test_a_key_without_training_scope_is_403_on_poll_and_claim(
    client: httpx.AsyncClient, member: Member
) -> None:
    key = (await create(client, member, scopes=["production"])).json()["apiKey"]["key"]
    headers = {"Authorization": f"Bearer {key}", "X-Agent-ID": AGENT_ID}
    expected = {
        "error": "API key does not have 'training' scope. Key scopes: production",
        "code": "INSUFFICIENT_SCOPE",
    }

    poll = await client.get(POLL, headers=headers)
    claim = await client.post("/api/training/agent/claim/some-job", headers=headers)

    assert (poll.status_code, poll.json()) == (403, expected)
    assert (claim.status_code, claim.json()) == (403, expected)
