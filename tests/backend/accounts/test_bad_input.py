"""Bad requests to the sign-in, key and agent endpoints, and the ``ApiKeyOrUser`` routes:
each a 4xx with one sentence and a code."""

from __future__ import annotations

import httpx
import pytest

from tests.backend.accounts.conftest import MakeMember, Member
from tests.backend.support import MakeJob, MakeKey

LOGIN = "/api/auth/login"
KEYS = "/api/user/api-keys"


@pytest.mark.parametrize(
    ("raw", "status", "code", "error"),
    [
        (b"{not json", 400, "INVALID_JSON", "Request body is not valid JSON"),
        (b"\xff\xfe", 400, "INVALID_JSON", "Request body is not valid JSON"),
        (b'["a"]', 400, "INVALID_REQUEST", "Invalid request: the body must be a JSON object"),
        (b'{"name": 1, "password": "x"}', 400, "INVALID_REQUEST", None),
        (b'{"name": "a"}', 400, "INVALID_REQUEST", "Invalid request: password: field required"),
        (b'{"name": "a", "password": "b", "x": 1}', 400, "INVALID_REQUEST", None),
        (b'{"name": "a", "password": "' + b"p" * 2000 + b'"}', 400, "INVALID_REQUEST", None),
        (b'{"name": "' + b"n" * 20_000 + b'"}', 413, "PAYLOAD_TOO_LARGE", None),
    ],
)
async def test_bad_login_bodies(
    client: httpx.AsyncClient, raw: bytes, status: int, code: str, error: str | None
) -> None:
    response = await client.post(LOGIN, content=raw, headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json()["code"]) == (status, code)
    if error is not None:
        assert response.json()["error"] == error


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "Invalid request: name: field required"),
        ({"name": ""}, "Invalid request: name: string should have at least 1 character"),
        ({"name": "   "}, "Invalid request: name: string should have at least 1 character"),
        ({"name": 5}, "Invalid request: name: input should be a valid string"),
        (
            {"name": "k", "scopes": "training"},
            "Invalid request: scopes: input should be a valid list",
        ),
        ({"name": "k", "scopes": [1]}, "Invalid request: scopes.0: input should be a valid string"),
        ({"name": "k" * 201}, "Invalid request: name: string should have at most 200 characters"),
        ({"name": "k", "id": "mine"}, "Invalid request: id: extra inputs are not permitted"),
    ],
)
async def test_bad_key_bodies(
    client: httpx.AsyncClient, member: Member, body: object, error: str
) -> None:
    response = await client.post(KEYS, json=body, headers=member.headers())
    assert response.status_code == 400
    assert response.json() == {"error": error, "code": "INVALID_REQUEST"}


async def test_an_oversized_key_body_is_413(client: httpx.AsyncClient, member: Member) -> None:
    response = await client.post(
        KEYS, json={"name": "k", "scopes": ["training"] * 5000}, headers=member.headers()
    )
    assert response.status_code == 413
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize("agent_id", ["agent_%00nul", "agent_" + "x" * 5000, "%F0%9F%92%A5"])
async def test_odd_agent_ids_are_404(
    client: httpx.AsyncClient, member: Member, agent_id: str
) -> None:
    response = await client.get(f"/api/training/agents/{agent_id}", headers=member.headers())
    assert response.status_code in (400, 404)
    assert set(response.json()) == {"error", "code"}


async def test_job_routes_take_a_session_or_a_key_for_the_owner_only(
    client: httpx.AsyncClient,
    member: Member,
    make_member: MakeMember,
    make_key: MakeKey,
    make_job: MakeJob,
) -> None:
    job = make_job(user_id=member.user.id)
    status = f"/api/training/local/{job.id}/status"
    key = make_key(member.user)

    by_session = await client.get(status, headers=member.headers())
    by_key = await client.get(status, headers={"X-API-Key": key.key})
    by_stranger = await client.get(status, headers=make_member().headers())
    anonymous = await client.get(status)

    assert by_session.status_code == by_key.status_code == 200
    assert by_session.json()["job_id"] == job.id
    assert by_stranger.status_code == 404
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "UNAUTHENTICATED"


async def test_a_wak_bearer_takes_the_key_path_and_is_checked_as_a_key(
    client: httpx.AsyncClient, member: Member, make_job: MakeJob
) -> None:
    job = make_job(user_id=member.user.id)
    response = await client.get(
        f"/api/training/local/{job.id}/status", headers={"Authorization": "Bearer wak_" + "Z" * 32}
    )
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_API_KEY"
