"""Two backend processes on one PostgreSQL database, as behind a load balancer: a job
submitted through one reaches an agent long-polling the other within 200 ms, a key
revoked through one is refused by the other at once, and the per-key rate limit is one
limit for both. ``serve --workers 2`` serves; on SQLite it is refused with a sentence."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.backend.conftest import fresh_database_url
from tests.support.backend import BackendProcess, start_backend

POLL = "/api/training/agent/poll"
PASSWORD = "a long password"

POSTGRESQL = pytest.mark.parametrize("database_kind", ["postgresql"])


@pytest.fixture
def pair(database_kind: str, tmp_path: Path) -> Iterator[tuple[BackendProcess, BackendProcess]]:
    """Two served processes on the same fresh database."""
    env = {"TRAINING_BACKEND_RATE_LIMIT_PER_MINUTE": "1", "TRAINING_BACKEND_RATE_LIMIT_BURST": "40"}
    with (
        fresh_database_url(database_kind, tmp_path) as url,
        start_backend(tmp_path / "one", database_url=url, env=env) as one,
        start_backend(tmp_path / "two", database_url=url, env=env) as two,
    ):
        one.cli("users", "create", "alice", "--password-stdin", input=PASSWORD + "\n")
        yield one, two


def agent_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "X-Agent-ID": "agent_twoprocess01"}


async def until_held(http: httpx.AsyncClient, held: asyncio.Task[httpx.Response]) -> None:
    # The held poll has reached the server once its first look is done: give it a moment.
    await asyncio.sleep(0.5)
    assert not held.done()


@POSTGRESQL
async def test_a_job_submitted_through_one_reaches_a_poll_held_by_the_other(
    pair: tuple[BackendProcess, BackendProcess],
) -> None:
    one, two = pair
    key = one.cli("keys", "create", "--user", "alice").strip()
    async with (
        httpx.AsyncClient(base_url=one.url, timeout=40) as first,
        httpx.AsyncClient(base_url=two.url, timeout=40) as second,
    ):
        await second.get(POLL, headers=agent_headers(key))  # known to both caches now
        latencies = []
        for _ in range(3):
            held = asyncio.create_task(
                second.get(POLL, params={"wait_seconds": 30}, headers=agent_headers(key))
            )
            await until_held(second, held)
            submitted = await first.post(
                "/api/training/jobs",
                json={"config": {}},
                headers={"Authorization": f"Bearer {key}"},
            )
            answered_at = time.monotonic()
            answer = await held
            latencies.append(time.monotonic() - answered_at)
            job = submitted.json()["job"]
            assert answer.json()["job"]["id"] == job["id"]
            claim = await second.post(
                f"/api/training/agent/claim/{job['id']}", headers=agent_headers(key)
            )
            assert claim.status_code == 200
    assert min(latencies) < 0.2, latencies  # the best of three: the machine may be busy


@POSTGRESQL
async def test_a_key_revoked_through_one_is_refused_by_the_other_at_once(
    pair: tuple[BackendProcess, BackendProcess],
) -> None:
    one, two = pair
    key = one.cli("keys", "create", "--user", "alice", "--name", "doomed").strip()
    async with (
        httpx.AsyncClient(base_url=one.url, timeout=40) as first,
        httpx.AsyncClient(base_url=two.url, timeout=40) as second,
    ):
        for _ in range(2):  # the other process now answers this key from its cache
            assert (await second.get(POLL, headers=agent_headers(key))).status_code == 200
        login = await first.post("/api/auth/login", json={"name": "alice", "password": PASSWORD})
        session = {"Authorization": f"Bearer {login.json()['token']}"}
        keys = (await first.get("/api/user/api-keys", headers=session)).json()["api_keys"]
        [doomed] = [row["id"] for row in keys if row["name"] == "doomed"]
        held = asyncio.create_task(
            second.get(POLL, params={"wait_seconds": 30}, headers=agent_headers(key))
        )
        await until_held(second, held)
        started = time.monotonic()
        assert (await first.delete(f"/api/user/api-keys/{doomed}", headers=session)).is_success
        answer = await held
        refused_after = time.monotonic() - started
        again = await second.get(POLL, headers=agent_headers(key))
    assert (answer.status_code, answer.json()["code"]) == (401, "INVALID_API_KEY")
    assert refused_after < 1.0
    assert again.status_code == 401


@POSTGRESQL
async def test_the_rate_limit_of_a_key_is_one_limit_for_both(
    pair: tuple[BackendProcess, BackendProcess],
) -> None:
    one, two = pair
    key = one.cli("keys", "create", "--user", "alice").strip()
    codes = []
    async with (
        httpx.AsyncClient(base_url=one.url, timeout=40) as first,
        httpx.AsyncClient(base_url=two.url, timeout=40) as second,
    ):
        for n in range(60):
            client = first if n % 2 else second
            codes.append((await client.get(POLL, headers=agent_headers(key))).status_code)
    # A burst of 40 for the key (one a minute after): about 40 answered in all, not 80.
    # Each process takes tokens two at a time (a lease), so one may be left unspent in
    # each, and the refill during the run adds one at most.
    assert 38 <= codes.count(200) <= 41, codes
    assert codes.count(429) == 60 - codes.count(200)


def test_serve_with_workers_is_refused_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'backend.sqlite3'}"
    command = [sys.executable, "-m", "training_backend.cli", "serve", "--workers", "2"]
    done = subprocess.run(
        [*command, "--database-url", url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.startswith("training-backend: --workers above 1 needs PostgreSQL")
    assert done.stderr.count("\n") == 1  # one sentence


@POSTGRESQL
def test_serve_with_two_workers(database_kind: str, tmp_path: Path) -> None:
    with (
        fresh_database_url(database_kind, tmp_path) as url,
        start_backend(tmp_path / "workers", database_url=url, args=("--workers", "2")) as served,
    ):
        served.cli("users", "create", "bob", "--no-password")
        key = served.cli("keys", "create", "--user", "bob").strip()
        with httpx.Client(base_url=served.url, timeout=30) as http:
            answers = [http.get(POLL, headers=agent_headers(key)) for _ in range(10)]
    assert {answer.status_code for answer in answers} == {200}
