"""The status API: token on every endpoint, snapshot, control, /metrics, and the live stream.

Request/response endpoints go through httpx's ASGITransport; the event stream and the
status file go through a real server on a loopback socket (ASGITransport buffers whole
bodies, so it cannot show a stream).
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import psutil
import pytest

from training_agent.errors import AgentNotRunningError, StatusApiError
from training_agent.state import AgentState, JobViewStatus
from training_agent.status_api import StatusApi, controller_for, create_app, start_status_api
from training_agent.status_client import StatusClient, StatusEvent, find_agent
from training_agent.status_events import EventStream
from training_agent.status_file import StatusFile

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


class FakeController:
    """Records what the API asked; ``running`` says which jobs can be cancelled."""

    def __init__(self, state: AgentState) -> None:
        self.state = state
        self.calls: list[tuple[str, ...]] = []
        self.running = {"job-1"}

    def drain(self) -> None:
        self.calls.append(("drain",))
        self.state.set_draining(True)

    def resume(self) -> None:
        self.calls.append(("resume",))
        self.state.set_draining(False)

    def cancel_job(self, job_id: str, reason: str) -> bool:
        self.calls.append(("cancel_job", job_id, reason))
        return job_id in self.running


@pytest.fixture
def state() -> AgentState:
    state = AgentState(agent_id="agent_0123456789abcdef", version="1.2.3", backend_url="http://b")
    state.poll_succeeded(latency_s=0.02, features=frozenset())
    state.job_started("job-1", model_name="tiny")
    state.job_progress("job-1", total_steps=10, total_epochs=1)
    state.job_metric("job-1", {"step": 3, "epoch": 0.3, "train_loss": 0.7})
    state.job_log("job-1", "epoch 0 step 3")
    return state


@pytest.fixture
def controller(state: AgentState) -> FakeController:
    return FakeController(state)


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


# -- a real server on a loopback socket -------------------------------------------------


@pytest.fixture
async def served(
    tmp_path: Path, state: AgentState, controller: FakeController
) -> AsyncIterator[StatusApi]:
    api = StatusApi(state=state, controller=controller, status_path=tmp_path / "status.json")
    await api.start()
    yield api
    await api.stop()


async def test_status_file_is_owner_only_and_leads_to_the_api(
    served: StatusApi, tmp_path: Path
) -> None:
    path = tmp_path / "status.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = json.loads(path.read_text())
    assert raw["pid"] == os.getpid()
    assert raw["url"] == f"http://127.0.0.1:{raw['port']}"
    assert len(raw["token"]) >= 43  # 32 random bytes
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temporary file left

    async with StatusClient(find_agent(path)) as client:
        snapshot = await client.status()
    assert snapshot["agent_id"] == "agent_0123456789abcdef"


async def test_stop_removes_the_file_and_the_port_closes(
    tmp_path: Path, state: AgentState, controller: FakeController
) -> None:
    path = tmp_path / "status.json"
    api = StatusApi(state=state, controller=controller, status_path=path)
    found = await api.start()
    await api.stop()
    assert not path.exists()
    with pytest.raises(AgentNotRunningError, match="no agent is running"):
        await StatusClient(found).status()


async def test_a_wrong_token_is_a_readable_error(served: StatusApi, tmp_path: Path) -> None:
    assert served.file is not None
    forged = StatusFile(**{**served.file.__dict__, "token": "x" * 43})
    async with StatusClient(forged) as client:
        with pytest.raises(StatusApiError, match="missing or wrong bearer token"):
            await client.status()


async def next_event(events: AsyncIterator[StatusEvent], name: str) -> StatusEvent:
    async def find() -> StatusEvent:
        async for event in events:
            if event.name == name:
                return event
        raise AssertionError(f"the stream ended before a {name!r} event")

    return await asyncio.wait_for(find(), 10)


async def test_events_send_the_snapshot_then_coalesced_changes(
    served: StatusApi, tmp_path: Path, state: AgentState
) -> None:
    async with StatusClient(find_agent(tmp_path / "status.json")) as client:
        events = cast(AsyncGenerator[StatusEvent, None], client.events())
        first = await asyncio.wait_for(events.__anext__(), 10)
        assert first.name == "status"
        assert first.data["jobs"][0]["step"] == 3

        # 200 changes with no await in between: the stream sends them as one batch.
        for step in range(4, 204):
            state.job_metric("job-1", {"step": step, "epoch": 0.5})
        state.job_log("job-1", "done with the batch")

        metrics = await asyncio.wait_for(events.__anext__(), 10)
        log = await asyncio.wait_for(events.__anext__(), 10)
        status = await asyncio.wait_for(events.__anext__(), 10)
        assert metrics.name == "metrics"
        assert metrics.data["job_id"] == "job-1"
        assert [p["step"] for p in metrics.data["points"]] == list(range(4, 204))
        assert (log.name, log.data["lines"]) == ("log", ["done with the batch"])
        assert log.data["first_line"] == 1  # the fixture's line was line 0
        assert status.name == "status"
        assert status.data["jobs"][0]["step"] == 203

        state.set_draining(True)
        later = await next_event(events, "status")
        assert later.data["draining"] is True
        assert int(later.id or 0) > int(status.id or 0)
        await events.aclose()


async def test_stopping_the_api_ends_open_streams(
    tmp_path: Path, state: AgentState, controller: FakeController
) -> None:
    path = tmp_path / "status.json"
    api = StatusApi(state=state, controller=controller, status_path=path)
    await api.start()
    async with StatusClient(find_agent(path)) as client:
        events = client.events()
        assert (await asyncio.wait_for(events.__anext__(), 10)).name == "status"
        await asyncio.wait_for(api.stop(), 10)
        rest = [event async for event in events]  # ends instead of hanging
    assert all(event.name in {"status", "metrics", "log"} for event in rest)


async def test_an_unwritable_status_file_leaves_the_agent_running_without_the_api(
    tmp_path: Path, state: AgentState, controller: FakeController, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    api = await start_status_api(
        state=state, daemon=controller, status_path=blocker / "status.json"
    )
    assert api is None
    assert "status API not started" in caplog.text


async def test_a_live_agent_on_the_same_state_dir_is_warned_about(
    tmp_path: Path, state: AgentState, controller: FakeController, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "status.json"
    parent = psutil.Process(os.getpid()).parent()
    assert parent is not None
    other = StatusFile(parent.pid, parent.create_time(), 1, "x" * 43, "agent_y", "0", 0.0)
    other.write(path)
    api = StatusApi(state=state, controller=controller, status_path=path)
    await api.start()
    await api.stop()
    assert f"another agent (pid {parent.pid}) uses the state directory" in caplog.text


async def test_the_event_stream_sends_at_most_once_per_coalesce_interval(
    state: AgentState,
) -> None:
    now = [1000.0]
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds
        await asyncio.sleep(0)

    stream = cast(
        AsyncGenerator[str, None],
        EventStream(
            state, asyncio.Event(), coalesce_s=0.1, clock=lambda: now[0], sleep=sleep
        ).stream(),
    )
    assert (await anext(stream)).startswith("retry:")
    assert "event: status" in await anext(stream)

    pending = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)  # the stream waits for a change now
    now[0] += 0.03  # a change 30 ms after the last send waits for the rest of the 100 ms
    state.set_draining(True)
    held = await pending
    assert "event: status" in held
    assert '"draining": true' in held
    assert sleeps == [pytest.approx(0.07)]

    pending = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    now[0] += 0.5  # a change long after the last send goes out at once
    state.set_draining(False)
    assert '"draining": false' in await pending
    assert sleeps[-1] == 0.0
    await stream.aclose()
