"""The status API's endpoints through httpx's ASGITransport: the token on every endpoint,
the snapshot, control, and /metrics. The event stream and the status file need a real
server: ``test_server.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.unit.status.conftest import FakeController
from training_agent.status.routes import create_app
from training_agent.status.server import controller_for
from training_agent.status.state import AgentState, JobViewStatus

TOKEN = "t" * 43
AUTH = {"Authorization": f"Bearer {TOKEN}"}

ENDPOINTS = [
    ("GET", "/v1/status"),
    ("GET", "/v1/events"),
    ("GET", "/v1/jobs/job-1"),
    ("GET", "/v1/jobs/job-1/metrics"),
    ("GET", "/v1/jobs/job-1/log"),
    ("POST", "/v1/jobs/job-1/cancel"),
    ("POST", "/v1/drain"),
    ("POST", "/v1/resume"),
    ("GET", "/v1/resources"),
    ("GET", "/metrics"),
    ("GET", "/no/such/endpoint"),
]


def client_for(app: Any, **kwargs: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", **kwargs)


@pytest.fixture
async def http(state: AgentState, controller: FakeController) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(state=state, controller=controller, token=TOKEN, backlog=lambda: {"logs": 7})
    async with client_for(app, headers=AUTH) as client:
        yield client


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize(
    "header", [None, "Bearer wrong", f"Bearer {TOKEN}x", TOKEN, f"bearer  {TOKEN}"]
)
async def test_every_endpoint_needs_the_token(
    state: AgentState, controller: FakeController, method: str, path: str, header: str | None
) -> None:
    app = create_app(state=state, controller=controller, token=TOKEN)
    headers = {} if header is None else {"Authorization": header}
    async with client_for(app) as client:
        response = await client.request(method, path, headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHORIZED"
    assert response.headers["www-authenticate"] == "Bearer"
    assert controller.calls == []


async def test_metrics_can_be_opened_by_the_setting(
    state: AgentState, controller: FakeController
) -> None:
    app = create_app(state=state, controller=controller, token=TOKEN, metrics_without_token=True)
    async with client_for(app) as client:
        assert (await client.get("/metrics")).status_code == 200
        assert (await client.get("/v1/status")).status_code == 401


async def test_only_loopback_clients_and_host_names(
    state: AgentState, controller: FakeController
) -> None:
    app = create_app(state=state, controller=controller, token=TOKEN)
    remote = httpx.ASGITransport(app=app, client=("192.168.1.20", 5000))
    async with httpx.AsyncClient(transport=remote, base_url="http://127.0.0.1") as client:
        response = await client.get("/v1/status", headers=AUTH)
    assert (response.status_code, response.json()["code"]) == (403, "NOT_LOOPBACK")
    async with client_for(app) as client:
        rebound = await client.get("/v1/status", headers={**AUTH, "Host": "evil.example:80"})
        localhost = await client.get("/v1/status", headers={**AUTH, "Host": "localhost:1234"})
    assert (rebound.status_code, rebound.json()["code"]) == (403, "BAD_HOST")
    assert localhost.status_code == 200


async def test_status_is_the_snapshot(http: httpx.AsyncClient, state: AgentState) -> None:
    response = await http.get("/v1/status")
    assert response.status_code == 200
    body = response.json()
    assert body["agent_id"] == "agent_0123456789abcdef"
    assert body["version"] == "1.2.3"
    assert body["backend_url"] == "http://b"
    assert body["connection"]["state"] == "connected"
    assert [(j["id"], j["step"], j["total_steps"]) for j in body["jobs"]] == [("job-1", 3, 10)]
    assert body["jobs"][0]["last_metrics"]["train_loss"] == 0.7
    assert body["draining"] is False


async def test_job_details_history_and_log(http: httpx.AsyncClient) -> None:
    job = await http.get("/v1/jobs/job-1")
    assert (job.status_code, job.json()["model_name"]) == (200, "tiny")
    history = await http.get("/v1/jobs/job-1/metrics")
    assert history.json()["points"] == [{"step": 3, "epoch": 0.3, "train_loss": 0.7}]
    log = await http.get("/v1/jobs/job-1/log", params={"tail": 5})
    assert log.json() == {"job_id": "job-1", "first_line": 0, "lines": ["epoch 0 step 3"]}
    for path in ("/v1/jobs/nope", "/v1/jobs/nope/metrics", "/v1/jobs/nope/log"):
        missing = await http.get(path)
        assert (missing.status_code, missing.json()["code"]) == (404, "JOB_NOT_FOUND")
    bad = await http.get("/v1/jobs/job-1/log", params={"tail": "lots"})
    assert bad.status_code == 400


async def test_resources_is_the_machine_load_read_now(
    state: AgentState, controller: FakeController
) -> None:
    reads: list[int] = []

    def usage() -> dict[str, Any]:
        reads.append(1)
        return {"cpu_percent": 12.5, "gpus": []}

    app = create_app(state=state, controller=controller, token=TOKEN, usage=usage)
    async with client_for(app, headers=AUTH) as client:
        first = await client.get("/v1/resources")
        await client.get("/v1/resources")
    assert first.json() == {"cpu_percent": 12.5, "gpus": []}
    assert len(reads) == 2  # sampled per request, never cached


async def test_resources_without_a_sampler_is_501(http: httpx.AsyncClient) -> None:
    answer = await http.get("/v1/resources")
    assert answer.status_code == 501
    assert answer.json()["code"] == "NOT_SUPPORTED"


async def test_cancel_asks_the_controller(
    http: httpx.AsyncClient, controller: FakeController
) -> None:
    response = await http.post("/v1/jobs/job-1/cancel")
    assert response.status_code == 202
    assert response.json() == {"job_id": "job-1", "cancelling": True}
    assert controller.calls == [("cancel_job", "job-1", "cancelled on this machine")]

    missing = await http.post("/v1/jobs/job-9/cancel")
    assert missing.status_code == 404
    assert missing.json()["code"] == "JOB_NOT_RUNNING"
    assert "job-9 is not running" in missing.json()["error"]


async def test_drain_and_resume(
    http: httpx.AsyncClient, controller: FakeController, state: AgentState
) -> None:
    assert (await http.post("/v1/drain")).json() == {"draining": True}
    assert state.draining
    assert (await http.post("/v1/resume")).json() == {"draining": False}
    assert controller.calls == [("drain",), ("resume",)]
    assert (await http.get("/v1/drain")).status_code == 405


async def test_a_daemon_without_resume_or_cancel_answers_501(state: AgentState) -> None:
    class DrainOnly:
        drained = False

        def drain(self) -> None:
            self.drained = True

    daemon = DrainOnly()
    app = create_app(state=state, controller=controller_for(daemon), token=TOKEN)
    async with client_for(app, headers=AUTH) as client:
        assert (await client.post("/v1/drain")).status_code == 200
        resume = await client.post("/v1/resume")
        cancel = await client.post("/v1/jobs/job-1/cancel")
    assert daemon.drained
    assert (resume.status_code, resume.json()["code"]) == (501, "NOT_SUPPORTED")
    assert cancel.status_code == 501


def test_controller_for_passes_a_full_controller_through(state: AgentState) -> None:
    controller = FakeController(state)
    assert controller_for(controller) is controller


async def test_metrics_in_prometheus_text_format(
    http: httpx.AsyncClient, state: AgentState
) -> None:
    state.poll_failed(state="unreachable", reason="down", retry_in_s=5)
    state.job_finished("job-1", status=JobViewStatus.COMPLETED, error=None)

    response = await http.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = parse_prometheus(response.text)
    assert (
        samples[
            'training_agent_info{agent_id="agent_0123456789abcdef",backend_url="http://b",'
            'version="1.2.3"}'
        ]
        == 1
    )
    assert (
        samples['training_agent_connection_state{training_agent_connection_state="unreachable"}']
        == 1
    )
    assert (
        samples['training_agent_connection_state{training_agent_connection_state="connected"}'] == 0
    )
    assert samples["training_agent_jobs_running"] == 0
    assert samples['training_agent_jobs_finished_total{status="completed"}'] == 1
    assert samples['training_agent_jobs_finished_total{status="failed"}'] == 0
    assert samples["training_agent_polls_total"] == 2
    assert samples["training_agent_poll_errors_total"] == 1
    assert samples["training_agent_last_poll_latency_seconds"] == pytest.approx(0.02)
    assert samples['training_agent_outbox_backlog{kind="logs"}'] == 7
    assert samples['training_agent_outbox_backlog{kind="metrics"}'] == 0
    assert samples["process_resident_memory_bytes"] > 0


async def test_metrics_answer_when_the_backlog_cannot_be_counted(
    state: AgentState, controller: FakeController
) -> None:
    def broken() -> dict[str, int]:
        raise OSError("disk gone")

    app = create_app(state=state, controller=controller, token=TOKEN, backlog=broken)
    async with client_for(app, headers=AUTH) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert "training_agent_outbox_backlog" not in response.text
    assert "training_agent_polls_total" in response.text


def parse_prometheus(text: str) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples
