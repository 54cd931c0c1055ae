"""Property tests of the agent-facing endpoints, over real HTTP against the served backend:
whatever the body and headers, the answer is a 2xx or a 4xx ``{"error", "code"}``, never a
500, and never another user's data.

Two users each have a pending and a running job. Requests are made as the first user
(or with garbage credentials); the second user's jobs carry a marker that must never
appear in an answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.support.backend import BackendProcess
from training_backend.db import create_db_engine, create_session_factory
from training_backend.db.models import TrainingJob
from training_backend.db.types import utcnow
from training_backend.security import generate_job_token, hash_secret
from training_backend.services.api_keys import create_api_key
from training_backend.services.users import create_user

MARKER = "SECRET-OF-THE-OTHER-USER"
EXAMPLES = 150


@dataclass(frozen=True)
class World:
    http: httpx.Client
    key: str
    other_key: str
    jobs: dict[str, str]  # role -> job id
    tokens: dict[str, str]  # role -> job token


def _job(db: Any, user_id: str, *, running: bool, secret: bool) -> tuple[str, str]:
    token = generate_job_token()
    now = utcnow()
    job = TrainingJob(
        user_id=user_id,
        status="running" if running else "pending",
        agent_id="agent_property0001" if running else None,
        job_token_hash=hash_secret(token) if running else None,
        config={"note": MARKER} if secret else {"note": "mine"},
        model_name=MARKER if secret else "mine",
        lease_expires_at=now.replace(year=now.year + 1) if running else None,
        created_at=now,
        updated_at=now,
    )
    db.add(job)
    db.commit()
    return job.id, token


@pytest.fixture
def world(served_backend: BackendProcess) -> Iterator[World]:
    """The real server, with two users' keys and jobs written straight to its database."""
    engine = create_db_engine(served_backend.database_url)
    try:
        with create_session_factory(engine)() as db:
            me, other = create_user(db, name="me"), create_user(db, name="other")
            _, key = create_api_key(db, user_id=me.id, name="k", scopes=["training"])
            _, other_key = create_api_key(db, user_id=other.id, name="k", scopes=["training"])
            jobs, tokens = {}, {}
            for role, owner, running in (
                ("mine_pending", me, False),
                ("mine_running", me, True),
                ("other_pending", other, False),
                ("other_running", other, True),
            ):
                jobs[role], tokens[role] = _job(
                    db, owner.id, running=running, secret=owner is other
                )
    finally:
        engine.dispose()
    with httpx.Client(base_url=served_backend.url, timeout=30) as http:
        yield World(http, key, other_key, jobs, tokens)


ENDPOINTS = [
    ("GET", "/api/training/agent/poll"),
    ("POST", "/api/training/agent/claim/{job}"),
    ("PATCH", "/api/training/local/{job}/status"),
    ("PUT", "/api/training/local/{job}/metrics"),
    ("POST", "/api/training/local/metrics"),
    ("POST", "/api/training/local/{job}/logs"),
    ("POST", "/api/training/local/{job}/heartbeat"),
]
KEYS = ["status", "error", "step", "epoch", "train_loss", "logs", "offset", "job_id", "metrics"]
KEYS += ["total_steps", "exit_code", "outputs", "progress", "eval_loss"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["running", "paused", "completed", "failed", "cancelled", "pending"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
plausible = st.one_of(
    st.integers(min_value=-5, max_value=2**33),
    st.floats(allow_nan=False),
    st.sampled_from(["running", "paused", "completed", "failed", "cancelled"]),
    st.lists(st.text(max_size=10), max_size=3),
    st.lists(st.dictionaries(st.sampled_from(KEYS), st.integers() | st.floats()), max_size=3),
)
bodies = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), plausible, max_size=5).map(json.dumps),
    st.dictionaries(st.sampled_from(KEYS), json_values, max_size=5).map(json.dumps),
    json_values.map(json.dumps),
    st.binary(max_size=64).map(lambda raw: raw.decode("latin-1")),
    st.just(""),
)
# What an HTTP client can send at all: printable ASCII, no surrounding blanks.
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(
    str.strip
)


@st.composite
def requests(draw: st.DrawFn, world: World) -> tuple[str, str, dict[str, str], str, dict[str, str]]:
    method, template = draw(st.sampled_from(ENDPOINTS))
    agent_call = template.startswith("/api/training/agent")
    if draw(st.booleans()):  # a well-addressed call, so bodies reach the services
        job = world.jobs["mine_pending" if agent_call else "mine_running"]
        secret = world.key if agent_call else world.tokens["mine_running"]
        auth = f"Bearer {secret}"
        agent_id = "agent_property0001"
    else:
        job = draw(st.sampled_from([*world.jobs.values(), "nope", "../../etc", "x" * 300]))
        auth = draw(st.sampled_from([f"Bearer {v}".strip() for v in auths(world)]) | header_text)
        agent_id = draw(st.sampled_from(["agent_property0001", "agent_x", ""]) | header_text)
    headers = {"Authorization": auth, "Content-Type": "application/json", "X-Agent-ID": agent_id}
    for name in ("X-Agent-Platform", "X-Agent-Info", "X-Agent-Current-Jobs", "X-Agent-Hostname"):
        if draw(st.booleans()):
            headers[name] = draw(header_text)
    params = {}
    if draw(st.booleans()):
        params["wait_seconds"] = draw(st.sampled_from(["0", "0.01", "-3", "soon", "nan", "1e309"]))
    body = draw(bodies)
    return method, template.format(job=job), headers, body, params


def auths(world: World) -> list[str]:
    return [
        world.key,
        world.other_key,
        world.tokens["mine_running"],
        world.tokens["other_running"],
        "wak_" + "A" * 32,
        "",
    ]


def test_any_request_gets_a_clean_answer_and_nothing_of_another_user(world: World) -> None:
    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(request=requests(world))
    def check(request: tuple[str, str, dict[str, str], str, dict[str, str]]) -> None:
        method, path, headers, body, params = request
        answer = world.http.request(method, path, headers=headers, content=body, params=params)
        assert answer.status_code < 500, (answer.status_code, answer.text)
        as_other = headers["Authorization"].endswith(
            (world.other_key, world.tokens["other_running"])
        )
        if not as_other:  # the other user may of course see their own jobs
            assert MARKER not in answer.text
        if answer.status_code >= 400:
            error = answer.json()
            assert isinstance(error["error"], str) and error["error"]
            assert isinstance(error["code"], str) and error["code"].isupper()

    check()
