"""Stopping the agent: the first SIGTERM drains, the second cancels the job."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.support.agent import agent_env, start_agent, wait_agent
from tests.support.backend import BackendProcess
from tests.support.e2e import LONG_DEMO, SLOW_DEMO, Owner, slow_demo_job, submit, wait_until

pytestmark = pytest.mark.e2e


def wait_for_steps(owner: Owner, job_id: str) -> None:
    wait_until(lambda: (owner.state(job_id).get("current_step") or 0) > 5, "steps reported")


def test_first_sigterm_drains(backend: BackendProcess, tmp_path: Path) -> None:
    owner, job_id = slow_demo_job(backend, tmp_path, "dana")
    key = owner.key
    agent = start_agent(agent_env(tmp_path / "agent", backend_url=backend.url, api_key=key))
    wait_for_steps(owner, job_id)

    agent.send_signal(signal.SIGTERM)
    at_signal = owner.state(job_id)
    # Submitted after the signal (a CLI run takes a second or two on a loaded machine, long
    # enough for the first job to end before the signal): the draining agent, still busy
    # with the first job, must leave it alone.
    second = submit(backend, tmp_path, "dana", SLOW_DEMO)
    code, output = wait_agent(agent)

    assert code == 0, output
    assert "draining" in output
    assert at_signal["status"] == "running"  # the signal came mid-job
    state = owner.state(job_id)
    assert state["status"] == "completed", state
    # Reports went on while draining: every step up to the last one arrived.
    assert state["current_step"] == state["total_steps"] > (at_signal["current_step"] or 0)
    assert owner.state(second)["status"] == "pending"  # nothing new claimed


def test_second_sigterm_cancels_and_reports_agent_stopped(
    backend: BackendProcess, tmp_path: Path
) -> None:
    owner, job_id = slow_demo_job(backend, tmp_path, "erin", LONG_DEMO)
    key = owner.key
    env = agent_env(
        tmp_path / "agent",
        backend_url=backend.url,
        api_key=key,
        TRAINING_AGENT_CANCEL_GRACE_SECONDS="5",
    )
    agent = start_agent(env)
    wait_for_steps(owner, job_id)

    agent.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    agent.send_signal(signal.SIGTERM)
    code, output = wait_agent(agent)

    assert code == 0, output
    state = owner.state(job_id)
    assert state["status"] == "failed", state
    assert state["error"] == "agent stopped"
    assert state["current_step"] < state["total_steps"]
