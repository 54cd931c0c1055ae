"""The page routes (sign-in redirects, not-found pages, security headers) and the JSON
routes the pages read (the jobs list, metrics after a step, download notes)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.backend.accounts.conftest import MakeMember, Member
from tests.backend.support import AGENT_ID, Caller, MakeJob, MakeRunningJob, bearer
from training_backend.routers.pages import safe_next
from training_backend.services.sessions import SESSION_COOKIE
from training_backend.settings import BackendSettings

PAGES = ["/workers", "/jobs", "/jobs/some-job", f"/workers/{AGENT_ID}"]


def signed_in(client: httpx.AsyncClient, member: Member) -> httpx.AsyncClient:
    client.cookies.set(SESSION_COOKIE, member.token)
    return client


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_sends_a_visitor_to_sign_in_first(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(f"{path}?tab=1")

    assert response.status_code == 303
    assert response.headers["location"] == f"/login?next={path}%3Ftab%3D1"


async def test_pages_are_served_with_a_strict_policy(
    client: httpx.AsyncClient, member: Member
) -> None:
    response = await signed_in(client, member).get("/workers")

    assert response.status_code == 200
    assert "<h1>Training Agent</h1>" in response.text
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"


async def test_the_user_name_is_escaped(client: httpx.AsyncClient, make_member: MakeMember) -> None:
    member = make_member(name="<script>x</script>")
    response = await signed_in(client, member).get("/jobs")

    assert "<script>x</script>" not in response.text
    assert "&lt;script&gt;x&lt;/script&gt;" in response.text


async def test_login_and_agents_redirect(client: httpx.AsyncClient, member: Member) -> None:
    assert (await client.get("/")).headers["location"] == "/workers"
    assert (await client.get("/agents")).headers["location"] == "/workers"
    assert (await client.get("/login")).status_code == 200
    again = await signed_in(client, member).get("/login?next=/jobs")
    assert (again.status_code, again.headers["location"]) == (303, "/jobs")


def test_only_paths_on_this_site_are_followed_after_sign_in() -> None:
    assert safe_next("/jobs/42?x=1") == "/jobs/42?x=1"
    for outside in ["//evil.example", "/\\evil.example", "https://evil.example", "jobs"]:
        assert safe_next(outside) == "/workers"


async def test_someone_elses_job_and_agent_pages_are_not_found(
    client: httpx.AsyncClient, member: Member, make_job: MakeJob
) -> None:
    job = make_job(agent_id=AGENT_ID)  # another user's job and agent
    signed_in(client, member)

    for path in (f"/jobs/{job.id}", f"/workers/{AGENT_ID}"):
        response = await client.get(path)
        assert response.status_code == 404
        assert "<h1>Not found</h1>" in response.text


async def test_the_jobs_list_is_the_callers_newest_first(
    client: httpx.AsyncClient, member: Member, make_job: MakeJob
) -> None:
    make_job()  # someone else's
    first = await client.post(
        "/api/training/jobs", json={"config": {"type": "demo"}}, headers=member.headers()
    )
    second = await client.post(
        "/api/training/jobs",
        json={"model_name": "two", "config": {"type": "demo"}},
        headers=member.headers(),
    )

    page = (await client.get("/api/training/jobs?limit=1", headers=member.headers())).json()
    rest = await client.get("/api/training/jobs?limit=1&offset=1", headers=member.headers())

    assert page["total"] == 2
    assert [job["id"] for job in page["jobs"]] == [second.json()["job"]["id"]]
    assert page["jobs"][0]["model_name"] == "two"
    assert page["jobs"][0]["status"] == "pending"
    assert "config" not in page["jobs"][0]
    assert [job["id"] for job in rest.json()["jobs"]] == [first.json()["job"]["id"]]
    bad = await client.get("/api/training/jobs?limit=0", headers=member.headers())
    assert bad.status_code == 400


async def test_metrics_after_a_step_leave_out_the_earlier_points(
    client: httpx.AsyncClient, caller: Caller, make_running_job: MakeRunningJob
) -> None:
    job, token = make_running_job()
    points = [{"step": step, "epoch": 0.1 * step, "train_loss": 1.0 / step} for step in (1, 2, 3)]
    batch = {"job_id": job.id, "metrics": points}
    await client.post("/api/training/local/metrics", json=batch, headers=bearer(token))
    url = f"/api/training/local/{job.id}/metrics"
    owner = caller.headers(agent_id=None)

    every = (await client.get(url, headers=owner)).json()["metrics"]
    later = (await client.get(f"{url}?after_step=1", headers=owner)).json()["metrics"]

    assert [point["step"] for point in every] == [1, 2, 3]
    assert [point["step"] for point in later] == [2, 3]


async def test_a_missing_build_says_what_to_do(
    app: FastAPI, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    settings: BackendSettings = app.state.settings
    app.state.settings = settings.model_copy(update={"releases_dir": tmp_path / "none"})

    listing = (await client.get("/api/workers/downloads")).json()

    for artifact in listing["artifacts"]:
        assert artifact["available"] is False
        assert f"training-backend releases add {artifact['filename']}" in artifact["message"]
