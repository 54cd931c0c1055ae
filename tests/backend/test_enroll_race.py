"""Enrollment over real HTTP against ``training-backend serve``: twenty installers race
for one token and exactly one gets a key; the page sees which; a revoked token is refused.

Runs on SQLite and on PostgreSQL (``served_backend`` is parametrized over both).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.support.backend import BackendProcess

RACERS = 20  # within the per-address burst of the enroll endpoint (30)
PASSWORD = "a long password"


@contextmanager
def signed_in(backend: BackendProcess, name: str) -> Iterator[httpx.Client]:
    """A client holding ``name``'s session cookie (the user is created with a password)."""
    backend.cli("users", "create", name, "--password-stdin", input=PASSWORD + "\n")
    with httpx.Client(base_url=backend.url, timeout=30) as page:
        login = page.post("/api/auth/login", json={"name": name, "password": PASSWORD})
        assert login.status_code == 200, login.text
        yield page


async def race(url: str, token: str) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def enroll(n: int) -> httpx.Response:
            body = {"token": token, "agent_id": f"agent_racer{n:04d}", "hostname": f"h{n}"}
            return await client.post("/api/training/agent/enroll", json=body)

        return await asyncio.gather(*(enroll(n) for n in range(RACERS)))


async def test_racing_installers_have_exactly_one_winner_and_the_page_sees_it(
    served_backend: BackendProcess,
) -> None:
    with signed_in(served_backend, "racer") as page:
        created = page.post("/api/workers/enrollments").json()
        dropped = page.post("/api/workers/enrollments").json()
        revoked = page.delete(f"/api/workers/enrollments/{dropped['enrollment']['id']}")
        assert revoked.status_code == 200

        answers = await race(served_backend.url, created["token"])

        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [201] + [401] * (RACERS - 1), [a.text for a in answers]
        [winner] = [n for n, answer in enumerate(answers) if answer.status_code == 201]
        losers = [answer.json()["code"] for answer in answers if answer.status_code == 401]
        assert set(losers) == {"ENROLLMENT_TOKEN_USED"}
        assert answers[winner].json()["backend_url"] == served_backend.url
        key = answers[winner].json()["api_key"]
        headers = {"Authorization": f"Bearer {key}", "X-Agent-ID": f"agent_racer{winner:04d}"}
        poll = httpx.get(f"{served_backend.url}/api/training/agent/poll", headers=headers)
        assert poll.status_code == 200
        listed = page.get("/api/workers/enrollments").json()["enrollments"]
        states = {e["id"]: (e["status"], e["agent_id"]) for e in listed}
        assert states == {
            created["enrollment"]["id"]: ("used", f"agent_racer{winner:04d}"),
            dropped["enrollment"]["id"]: ("revoked", None),
        }
        keys = page.get("/api/user/api-keys").json()["api_keys"]
        assert [key["name"] for key in keys] == [f"h{winner}"]
        body = {"token": dropped["token"], "agent_id": "agent_late000001"}
        refused = page.post("/api/training/agent/enroll", json=body)
        assert (refused.status_code, refused.json()["code"]) == (401, "ENROLLMENT_TOKEN_REVOKED")
