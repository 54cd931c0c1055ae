"""The extensions' side of BackendClient: heartbeat, ``control`` on answers, poll headers."""

from __future__ import annotations

import httpx
import pytest

from tests.support.fake_backend import API_KEY, FakeBackend
from training_agent.api import BackendClient, HeartbeatResponse, JobState
from training_agent.errors import ConflictError
from training_agent.jobs import JobStatus

TOKEN = "tok_" + "x" * 40


async def test_heartbeat_posts_with_the_job_token_and_reads_control(
    backend: FakeBackend, client: BackendClient
) -> None:
    backend.on(
        "POST /api/training/local/j1/heartbeat",
        httpx.Response(200, json={"control": "pause", "lease_expires_at": "2026-01-01T00:00Z"}),
    )
    answer = await client.heartbeat("j1", TOKEN)
    assert answer == HeartbeatResponse(control="pause", lease_expires_at="2026-01-01T00:00Z")
    request = backend.requests[-1]
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    ("sent", "read"),
    [(None, None), ("cancel", "cancel"), (" Resume ", "resume"), ("explode", None), (7, None)],
)
def test_control_words_are_known_or_ignored(sent: object, read: str | None) -> None:
    assert HeartbeatResponse.model_validate({"control": sent}).control == read
    assert JobState.model_validate({"status": "running", "control": sent}).control == read


async def test_report_answers_carry_control_and_tolerate_any_body(
    backend: FakeBackend, client: BackendClient
) -> None:
    backend.on(
        "PATCH /api/training/local/j1/status", httpx.Response(200, json={"control": "cancel"})
    )
    backend.on("POST /api/training/local/metrics", httpx.Response(200, text="stored"))
    backend.on("POST /api/training/local/j1/logs", httpx.Response(200, json={"control": "pause"}))
    status = await client.update_status("j1", TOKEN, JobStatus.RUNNING)
    metrics = await client.post_metrics("j1", TOKEN, [{"step": 1, "epoch": 0.1}])
    logs = await client.post_logs("j1", TOKEN, ["a"])
    assert (status.control, metrics.control, logs.control) == ("cancel", None, "pause")


async def test_a_lost_lease_on_heartbeat_is_a_conflict_with_its_code(
    backend: FakeBackend, client: BackendClient
) -> None:
    backend.on(
        "POST /api/training/local/j1/heartbeat",
        httpx.Response(409, json={"error": "lease expired", "code": "LEASE_EXPIRED"}),
    )
    with pytest.raises(ConflictError) as caught:
        await client.heartbeat("j1", TOKEN)
    assert caught.value.code == "LEASE_EXPIRED"


async def test_poll_sends_extra_headers_but_never_lets_them_replace_auth(
    backend: FakeBackend, client: BackendClient
) -> None:
    backend.on("GET /api/training/agent/poll", httpx.Response(200, json={"job": None}))
    await client.poll(
        headers={"X-Agent-Info": '{"cpu":2}', "X-Agent-Current-Jobs": "", "Authorization": "no"}
    )
    request = backend.requests[-1]
    assert request.headers["X-Agent-Info"] == '{"cpu":2}'
    assert request.headers["X-Agent-Current-Jobs"] == ""
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"


async def test_a_new_api_key_is_used_from_the_next_request(
    backend: FakeBackend, client: BackendClient
) -> None:
    backend.on("GET /api/training/agent/poll", httpx.Response(200, json={"job": None}))
    client.set_api_key("wak_" + "N" * 32 + "\n")
    await client.poll()
    assert backend.requests[-1].headers["Authorization"] == "Bearer wak_" + "N" * 32
    assert client.api_key.get_secret_value() == "wak_" + "N" * 32
