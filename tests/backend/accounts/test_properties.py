"""Property-based bad input for sign-in, API keys, agents and the agent headers: whatever
arrives, the answer is a success or a 4xx ``{"error", "code"}``, never a 500, and never
another user's data."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.backend.accounts.conftest import MakeMember, Member
from tests.backend.support import AGENT_ID, MakeKey
from training_backend.db.models import ApiKey, TrainingAgent
from training_backend.db.types import utcnow
from training_backend.ratelimit import LoginThrottle
from training_backend.services.agents import AgentIdentity, record_poll

EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)
# Values a JSON body field might hold, from plausible to absurd.
field_values = st.one_of(st.text(max_size=300), json_values, st.text(min_size=1025, max_size=1100))
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200)
path_segment = st.text(min_size=1, max_size=150).map(lambda text: quote(text, safe=""))


def bodies(*fields: str) -> st.SearchStrategy[bytes]:
    """Raw request bodies: objects with these fields (or others), any JSON, or junk bytes."""
    objects = st.fixed_dictionaries({}, optional={name: field_values for name in fields})
    any_json = json_values | objects | st.dictionaries(st.text(max_size=10), field_values)
    return st.one_of(
        any_json.map(lambda value: json.dumps(value).encode()),
        st.binary(max_size=200),
        st.just(b"x" * 20_000),  # over the 16 KiB body limit
    )


def assert_handled(response: httpx.Response, *ok: int) -> dict[str, Any]:
    assert response.status_code < 500, response.text
    if response.status_code in (307, 308):  # a path like ".../%2F": FastAPI's slash redirect
        assert response.headers["location"].startswith("http://backend.test/api/")
        return {}
    body: dict[str, Any] = response.json()
    if response.status_code not in ok:
        assert 400 <= response.status_code < 500
        assert set(body) >= {"error", "code"}
        assert isinstance(body["error"], str) and body["error"]
        assert body["code"].isupper()
    return body


@EXAMPLES
@given(raw=bodies("name", "password"))
async def test_login_never_fails_badly(
    client: httpx.AsyncClient, app: FastAPI, member: Member, raw: bytes
) -> None:
    app.state.login_throttle = LoginThrottle(name_burst=10**6, address_burst=10**6)
    response = await client.post(
        "/api/auth/login", content=raw, headers={"Content-Type": "application/json"}
    )
    body = assert_handled(response)
    assert response.status_code in (400, 401, 413)
    assert member.token not in response.text
    if response.status_code == 401:
        assert body == {"error": "Invalid user name or password", "code": "INVALID_CREDENTIALS"}


@EXAMPLES
@given(raw=bodies("name", "scopes"))
async def test_key_creation_never_fails_badly(
    client: httpx.AsyncClient, member: Member, db: Session, raw: bytes
) -> None:
    response = await client.post(
        "/api/user/api-keys",
        content=raw,
        headers=member.headers(**{"Content-Type": "application/json"}),
    )
    body = assert_handled(response, 201)
    if response.status_code == 201:
        row = db.get(ApiKey, body["apiKey"]["id"])
        assert row is not None and row.user_id == member.user.id


@EXAMPLES
@given(key_id=path_segment, method=st.sampled_from(["GET", "DELETE"]))
async def test_key_ids_never_reach_another_users_keys(
    client: httpx.AsyncClient,
    member: Member,
    make_member: MakeMember,
    make_key: MakeKey,
    db: Session,
    key_id: str,
    method: str,
) -> None:
    stranger = make_key(make_member().user)
    stranger_id = db.scalar(select(ApiKey.id).where(ApiKey.user_id == stranger.user.id))
    for target in (key_id, str(stranger_id)):
        response = await client.request(
            method, f"/api/user/api-keys/{target}", headers=member.headers()
        )
        assert_handled(response, 200)  # "." and "..": the caller's own list
        assert response.status_code in (200, 307, 400, 404, 405)
    listed = await client.get("/api/user/api-keys", headers=member.headers())
    assert stranger.key[:12] not in listed.text
    db.expire_all()
    assert db.scalar(select(ApiKey.revoked_at).where(ApiKey.id == stranger_id)) is None


@EXAMPLES
@given(
    agent_id=st.one_of(path_segment, st.just(AGENT_ID)),
    action=st.sampled_from(
        [("GET", ""), ("GET", "/jobs"), ("DELETE", ""), ("POST", "/enable"), ("PUT", "")]
    ),
    query=st.dictionaries(st.sampled_from(["limit", "offset"]), header_text, max_size=2),
)
async def test_agent_ids_never_reach_another_users_agents(
    client: httpx.AsyncClient,
    member: Member,
    make_member: MakeMember,
    db: Session,
    agent_id: str,
    action: tuple[str, str],
    query: dict[str, str],
) -> None:
    stranger = make_member()
    record_poll(db, user_id=stranger.user.id, agent=AgentIdentity(AGENT_ID), now=utcnow())
    method, suffix = action

    response = await client.request(
        method,
        f"/api/training/agents/{agent_id}{suffix}",
        params=query,
        headers=member.headers(),
    )

    # "." and ".." are resolved by the client: the list of the caller's own agents (200)
    assert_handled(response, 200)
    assert response.status_code in (200, 307, 400, 404, 405)
    assert stranger.user.id not in response.text
    listed = await client.get("/api/training/agents", headers=member.headers())
    assert listed.json()["agents"] == []
    db.expire_all()
    rows = db.scalars(select(TrainingAgent).where(TrainingAgent.user_id == stranger.user.id))
    assert [row.revoked_at for row in rows] == [None]


@EXAMPLES
@given(
    info=st.one_of(header_text, json_values.map(lambda value: json.dumps(value))),
    current_jobs=header_text,
    hostname=header_text,
    platform=header_text,
)
async def test_agent_headers_never_break_a_poll(
    client: httpx.AsyncClient,
    make_key: MakeKey,
    db: Session,
    info: str,
    current_jobs: str,
    hostname: str,
    platform: str,
) -> None:
    caller = make_key()
    headers = caller.headers(
        **{
            "X-Agent-Info": info,
            "X-Agent-Current-Jobs": current_jobs,
            "X-Agent-Hostname": hostname,
            "X-Agent-Platform": platform,
        }
    )
    response = await client.get("/api/training/agent/poll", headers=headers)
    assert_handled(response, 200)
    assert response.status_code == 200
    db.expire_all()
    row = db.scalar(select(TrainingAgent).where(TrainingAgent.user_id == caller.user.id))
    assert row is not None and isinstance(row.metadata_, dict)
    assert set(row.metadata_) <= {"info", "current_jobs"}
    assert row.platform in (None, "linux", "darwin", "windows")
