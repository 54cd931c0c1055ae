"""BackendClient against a fake server (httpx.MockTransport): its requests and what it reads."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.fake_server import (
    API_KEY,
    BASE_URL,
    IDENTITY,
    JOB,
    JOB_TOKEN,
    FakeServer,
    assert_api_key_auth,
)
from training_agent.api import BackendClient, ClaimResponse, PollResponse
from training_agent.jobs import JobStatus

# --- requests -------------------------------------------------------------------------------


async def test_poll_sends_key_and_agent_headers_and_parses_job(
    wire_client: BackendClient, server: FakeServer
) -> None:
    server.reply(json={"job": JOB, "poll_interval_seconds": 5})
    answer = await wire_client.poll()
    assert (server.last.method, server.last.url.path) == ("GET", "/api/training/agent/poll")
    assert server.last.url.query == b""
    assert_api_key_auth(server.last)
    assert server.last.headers["User-Agent"] == "training-agent/1.2.3"
    assert answer.job is not None
    assert (answer.job.id, answer.job.config) == ("job-1", {"model": {"name": "gpt2"}})
    assert answer.poll_interval_seconds == 5
    assert answer.features == frozenset()


async def test_poll_without_wait_uses_the_default_timeouts(
    wire_client: BackendClient, server: FakeServer
) -> None:
    server.reply(json={"job": None})
    await wire_client.poll()
    timeout = server.last.extensions["timeout"]
    assert (timeout["connect"], timeout["read"]) == (10.0, 30.0)


async def test_long_poll_adds_wait_seconds_and_extends_the_read_timeout(
    wire_client: BackendClient, server: FakeServer
) -> None:
    server.reply(json={"job": None, "features": ["long_poll"]})
    answer = await wire_client.poll(wait_s=25)
    assert server.last.url.params["wait_seconds"] == "25"
    assert server.last.extensions["timeout"]["read"] == 35.0
    assert server.last.extensions["timeout"]["connect"] == 10.0
    assert answer.features == frozenset({"long_poll"})


async def test_claim_posts_with_the_api_key_and_quotes_the_job_id(
    wire_client: BackendClient, server: FakeServer
) -> None:
    server.reply(json={"success": True, "job_token": JOB_TOKEN, "job": JOB, "lease_seconds": 60})
    answer = await wire_client.claim("a/b c")
    assert server.last.method == "POST"
    assert server.last.url.raw_path == b"/api/training/agent/claim/a%2Fb%20c"
    assert_api_key_auth(server.last)
    assert answer == ClaimResponse.model_validate(
        {"job_token": JOB_TOKEN, "job": JOB, "lease_seconds": 60}
    )


async def test_update_status_uses_the_job_token_and_sends_only_given_keys(
    wire_client: BackendClient, server: FakeServer
) -> None:
    await wire_client.update_status("job-1", JOB_TOKEN, JobStatus.RUNNING)
    assert (server.last.method, server.last.url.path) == (
        "PATCH",
        "/api/training/local/job-1/status",
    )
    assert server.last.headers["Authorization"] == f"Bearer {JOB_TOKEN}"
    assert server.last_json() == {"status": "running"}


async def test_update_status_sends_error_and_details_without_nones(
    wire_client: BackendClient, server: FakeServer
) -> None:
    details = {"exit_code": 3, "outputs": ["out/model"], "total_steps": None}
    await wire_client.update_status(
        "job-1", JOB_TOKEN, JobStatus.FAILED, error="boom", details=details
    )
    assert server.last_json() == {
        "status": "failed",
        "error": "boom",
        "exit_code": 3,
        "outputs": ["out/model"],
    }


async def test_update_status_refuses_details_that_override_the_status(
    wire_client: BackendClient, server: FakeServer
) -> None:
    with pytest.raises(ValueError, match="status"):
        await wire_client.update_status("j", JOB_TOKEN, JobStatus.RUNNING, details={"status": "x"})
    assert server.requests == []


async def test_put_metric_drops_none_values(wire_client: BackendClient, server: FakeServer) -> None:
    await wire_client.put_metric("job-1", JOB_TOKEN, {"step": 3, "epoch": 0.5, "eval_loss": None})
    assert (server.last.method, server.last.url.path) == (
        "PUT",
        "/api/training/local/job-1/metrics",
    )
    assert server.last.headers["Authorization"] == f"Bearer {JOB_TOKEN}"
    assert server.last_json() == {"step": 3, "epoch": 0.5}


async def test_post_metrics_sends_a_batch(wire_client: BackendClient, server: FakeServer) -> None:
    points: list[dict[str, Any]] = [
        {"step": 1, "epoch": 0.1, "train_loss": 2.0},
        {"step": 2, "epoch": 0.2, "x": None},
    ]
    await wire_client.post_metrics("job-1", JOB_TOKEN, points)
    assert (server.last.method, server.last.url.path) == ("POST", "/api/training/local/metrics")
    assert server.last.headers["Authorization"] == f"Bearer {JOB_TOKEN}"
    assert server.last_json() == {
        "job_id": "job-1",
        "metrics": [{"step": 1, "epoch": 0.1, "train_loss": 2.0}, {"step": 2, "epoch": 0.2}],
    }


async def test_post_logs_sends_offset_only_when_given(
    wire_client: BackendClient, server: FakeServer
) -> None:
    server.reply(json={"success": True, "logs_appended": 2, "total_logs": 7})
    answer = await wire_client.post_logs("job-1", JOB_TOKEN, ["a", "b"])
    assert (server.last.method, server.last.url.path) == ("POST", "/api/training/local/job-1/logs")
    assert server.last.headers["Authorization"] == f"Bearer {JOB_TOKEN}"
    assert server.last_json() == {"logs": ["a", "b"]}
    assert (answer.logs_appended, answer.total_logs) == (2, 7)

    await wire_client.post_logs("job-1", JOB_TOKEN, ["c"], offset=0)
    assert server.last_json() == {"logs": ["c"], "offset": 0}


async def test_post_logs_tolerates_an_answer_without_counts(
    wire_client: BackendClient, server: FakeServer
) -> None:
    server.reply(json={"success": True, "message": "No logs to append"})
    answer = await wire_client.post_logs("job-1", JOB_TOKEN, [])
    assert (answer.logs_appended, answer.total_logs) == (None, None)


async def test_get_job_state_uses_the_api_key(
    wire_client: BackendClient, server: FakeServer
) -> None:
    server.reply(
        json={"job_id": "job-1", "status": "cancelled", "progress": 0, "control": "cancel"}
    )
    state = await wire_client.get_job_state("job-1")
    assert (server.last.method, server.last.url.path) == ("GET", "/api/training/local/job-1/status")
    assert_api_key_auth(server.last)
    assert (state.status, state.error, state.control) == ("cancelled", None, "cancel")


async def test_base_url_path_prefix_is_kept(server: FakeServer) -> None:
    server.reply(json={"status": "running"})
    transport = httpx.MockTransport(server)
    url = "https://example.test/platform/"
    async with BackendClient(
        base_url=url, api_key=API_KEY, identity=IDENTITY, transport=transport
    ) as c:
        await c.get_job_state("j")
    assert str(server.last.url) == "https://example.test/platform/api/training/local/j/status"


async def test_aclose_closes_the_transport() -> None:
    class Transport(httpx.MockTransport):
        closed = False

        async def aclose(self) -> None:
            self.closed = True

    transport = Transport(lambda _request: httpx.Response(200))
    async with BackendClient(
        base_url=BASE_URL, api_key=API_KEY, identity=IDENTITY, transport=transport
    ):
        pass
    assert transport.closed


# --- answers --------------------------------------------------------------------------------


async def test_unknown_fields_and_nulls_are_tolerated(
    wire_client: BackendClient, server: FakeServer
) -> None:
    job = {**JOB, "config": None, "priority": 3, "total_steps": 400}
    server.reply(json={"job": job, "poll_interval_seconds": None, "features": None, "new": {}})
    answer = await wire_client.poll()
    assert answer.job is not None
    assert (answer.job.config, answer.job.total_steps) == ({}, 400)
    assert answer.poll_interval_seconds == 10
    assert answer.features == frozenset()


@pytest.mark.parametrize(("sent", "used"), [(0, 1.0), (0.2, 1.0), (42, 42.0), (86400, 300.0)])
def test_poll_interval_is_clamped(sent: float, used: float) -> None:
    assert (
        PollResponse.model_validate({"poll_interval_seconds": sent}).poll_interval_seconds == used
    )


def test_features_ignore_entries_that_are_not_names() -> None:
    answer = PollResponse.model_validate({"features": ["leases", 7, None, "heartbeat"]})
    assert answer.features == frozenset({"leases", "heartbeat"})


def test_a_config_sent_as_a_json_string_is_decoded() -> None:
    answer = PollResponse.model_validate({"job": {**JOB, "config": '{"type": "command"}'}})
    assert answer.job is not None
    assert answer.job.config == {"type": "command"}
