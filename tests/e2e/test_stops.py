"""Stopping the agent: the first SIGTERM drains, the second cancels the job."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.agent import agent_env, start_agent, wait_agent
from tests.support.backend import BackendProcess

pytestmark = pytest.mark.e2e

# ~600 steps of 10 ms: long enough to signal the agent mid-job, short enough to finish.
SLOW_DEMO = {"type": "demo", "samples": 3200, "epochs": 3, "batch_size": 16, "step_delay_s": 0.01}


def setup_job(backend: BackendProcess, tmp_path: Path, user: str) -> tuple[str, str]:
    backend.cli("users", "create", user)
    key = backend.cli("keys", "create", "--user", user, "--scope", "training").strip()
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({"model_name": "demo", "config": SLOW_DEMO}))
    return key, backend.cli("jobs", "submit", "--user", user, "--file", str(job_file)).strip()


def job_state(backend: BackendProcess, key: str, job_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{backend.url}/api/training/local/{job_id}/status",
        headers={"Authorization": f"Bearer {key}"},
    )
    state: dict[str, Any] = response.json()
    return state


def wait_for_steps(backend: BackendProcess, key: str, job_id: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if (job_state(backend, key, job_id).get("current_step") or 0) > 5:
            return
        time.sleep(0.1)
    raise AssertionError("the job did not start reporting steps within 30 s")


def test_first_sigterm_drains(backend: BackendProcess, tmp_path: Path) -> None:
    key, job_id = setup_job(backend, tmp_path, "dana")
    agent = start_agent(agent_env(tmp_path / "agent", backend_url=backend.url, api_key=key))
    wait_for_steps(backend, key, job_id)
    waiting = tmp_path / "second.json"
    waiting.write_text(json.dumps({"model_name": "demo", "config": SLOW_DEMO}))
    second = backend.cli("jobs", "submit", "--user", "dana", "--file", str(waiting)).strip()

    agent.send_signal(signal.SIGTERM)
    at_signal = job_state(backend, key, job_id)
    code, output = wait_agent(agent)

    assert code == 0, output
    assert "draining" in output
    assert at_signal["status"] == "running"  # the signal came mid-job
    state = job_state(backend, key, job_id)
    assert state["status"] == "completed", state
    # Reports went on while draining: every step up to the last one arrived.
    assert state["current_step"] == state["total_steps"] > (at_signal["current_step"] or 0)
    assert job_state(backend, key, second)["status"] == "pending"  # nothing new claimed


def test_second_sigterm_cancels_and_reports_agent_stopped(
    backend: BackendProcess, tmp_path: Path
) -> None:
    key, job_id = setup_job(backend, tmp_path, "erin")
    env = agent_env(
        tmp_path / "agent",
        backend_url=backend.url,
        api_key=key,
        TRAINING_AGENT_CANCEL_GRACE_SECONDS="5",
    )
    agent = start_agent(env)
    wait_for_steps(backend, key, job_id)

    agent.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    agent.send_signal(signal.SIGTERM)
    code, output = wait_agent(agent)

    assert code == 0, output
    state = job_state(backend, key, job_id)
    assert state["status"] == "failed", state
    assert state["error"] == "agent stopped"
    assert state["current_step"] < state["total_steps"]
