"""A job's outputs through the whole daemon: planned at its end, uploaded, then its end
reported with the artifact ids (a real job process, a scripted backend, virtual time)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.support.executor import command_job
from tests.support.fake_artifacts import FakeArtifactServer
from tests.support.fake_backend import API_KEY, IDENTITY, FakeBackend
from tests.unit.test_daemon import FEATURES, POLL, Offers, VirtualTime
from training_agent.agent import Agent, build_agent
from training_agent.config import Settings
from training_agent.daemon import EXIT_OK
from training_agent.paths import AgentPaths

MODEL_BYTES = 300_000
STATUS = "PATCH /api/training/local/job-1/status"


class Backend:
    """Poll, claim and reports from a ``FakeBackend``; the artifact routes from a
    ``FakeArtifactServer``."""

    def __init__(self) -> None:
        self.reports = FakeBackend()
        self.artifacts = FakeArtifactServer()
        self.order: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.order.append(f"{request.method} {request.url.path}")
        if "/artifacts" in request.url.path:
            return self.artifacts(request)
        return self.reports(request)

    def statuses(self) -> list[dict[str, Any]]:
        return self.reports.calls(STATUS)

    def log_lines(self) -> list[str]:
        return [
            line
            for call in self.reports.calls("POST /api/training/local/job-1/logs")
            for line in call["logs"]
        ]


@pytest.fixture
async def run_job(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    agents: list[Agent] = []

    async def run(features: list[str], **settings: Any) -> Backend:
        backend = Backend()
        offers = Offers(backend.reports, features)
        offers.add("job-1", command_job("write-outputs", str(MODEL_BYTES)))
        backend.reports.on(POLL, offers)
        time = VirtualTime()
        agent = build_agent(
            Settings(
                backend_url="http://backend.test",
                allow_command_jobs=True,
                min_poll_interval_seconds=0.1,
                min_free_disk_gb=0.0,
                max_jobs=1,
                **settings,
            ),
            AgentPaths.under(tmp_path / "agent"),
            api_key=SecretStr(API_KEY),
            identity=IDENTITY,
            transport=httpx.MockTransport(backend),
            clock=time.clock,
            sleep=time.sleep,
            rng=lambda: 0.5,
            nvml_loader=lambda: None,
        )
        agents.append(agent)
        assert await asyncio.wait_for(agent.daemon.run(), 60) == EXIT_OK
        return backend

    yield run
    for agent in agents:
        await agent.aclose()


async def test_outputs_upload_before_the_end_is_reported_with_their_ids(
    run_job: Callable[..., Any], tmp_path: Path
) -> None:
    backend = await run_job([*FEATURES, "artifacts"])

    work = tmp_path / "agent" / "data" / "jobs" / "job-1"
    stored = {artifact.name: artifact for artifact in backend.artifacts.complete()}
    assert sorted(stored) == ["final_adapter.tar", "weights"]
    assert bytes(stored["weights"].data) == (work / "model.bin").read_bytes()
    assert stored["final_adapter.tar"].kind == "adapter"

    final = backend.statuses()[-1]
    assert final["status"] == "completed"
    outputs = {Path(item["path"]).name: item for item in final["outputs"]}
    assert outputs["model.bin"]["artifact_id"] == stored["weights"].id
    assert outputs["final_adapter"]["artifact_id"] == stored["final_adapter.tar"].id
    assert "artifact_id" not in outputs["checkpoint-1"]  # "final" leaves checkpoints local
    assert "artifact_id" not in outputs["hostname"]
    assert any(
        "/etc/hostname is not uploaded: it is outside" in line for line in backend.log_lines()
    )
    last_chunk = max(i for i, call in enumerate(backend.order) if call.startswith("PUT"))
    assert backend.order.index(STATUS, last_chunk) > last_chunk


async def test_a_backend_without_artifacts_gets_the_local_paths(
    run_job: Callable[..., Any],
) -> None:
    backend = await run_job(FEATURES)

    assert backend.artifacts.requests == []
    final = backend.statuses()[-1]
    assert all(isinstance(path, str) for path in final["outputs"])
    assert any(path.endswith("model.bin") for path in final["outputs"])


async def test_uploads_switched_off_on_the_machine(run_job: Callable[..., Any]) -> None:
    backend = await run_job([*FEATURES, "artifacts"], upload_artifacts=False)

    assert backend.artifacts.requests == []
    assert any("upload_artifacts is off" in line for line in backend.log_lines())
    assert all("artifact_id" not in item for item in backend.statuses()[-1]["outputs"])
