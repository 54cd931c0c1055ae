"""An agent revoked on the platform stops polling, gives up its job and exits 4.

Revoking an agent retires the job tokens of its running jobs (403 ``JOB_TOKEN_REVOKED``):
the agent stops the job and drops its reports, and the backend puts the job back in the
queue while attempts remain (else fails it), so a revoked machine does no more work.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.agent import agent_env, start_agent, wait_agent
from tests.support.backend import start_backend
from tests.support.e2e import Owner, submit
from training_agent.daemon import EXIT_REVOKED

pytestmark = pytest.mark.e2e

# 240 steps of 15 ms: the revocation lands mid-job.
SLOW_DEMO = {"type": "demo", "samples": 1600, "epochs": 3, "batch_size": 16, "step_delay_s": 0.015}


def test_a_revoked_agent_gives_up_its_job_and_exits_4(tmp_path: Path) -> None:
    quick_polls = {"TRAINING_BACKEND_POLL_INTERVAL_SECONDS": "1"}
    with start_backend(tmp_path / "backend", env=quick_polls) as backend:
        _user_id, password = backend.cli("users", "create", "rita").split()
        key = backend.cli("keys", "create", "--user", "rita").strip()
        owner = Owner(backend, key)
        job_id = submit(backend, tmp_path, "rita", SLOW_DEMO)
        home = tmp_path / "agent"
        agent = start_agent(agent_env(home, backend_url=backend.url, api_key=key))
        try:
            owner.wait_for(job_id, lambda s: (s.get("current_step") or 0) >= 5, "5 steps")
            login = httpx.post(
                f"{backend.url}/api/auth/login", json={"name": "rita", "password": password}
            )
            session = {"Authorization": f"Bearer {login.json()['token']}"}
            agent_id = (home / "state" / "agent_id").read_text().strip()
            revoked = httpx.delete(f"{backend.url}/api/training/agents/{agent_id}", headers=session)
            assert revoked.status_code == 200, revoked.text
        finally:
            code, output = wait_agent(agent)
        state = owner.state(job_id)

    assert code == EXIT_REVOKED, output
    assert output.count("the platform revoked this agent") == 2  # said, then the exit
    assert state["status"] in ("pending", "failed"), state  # never completed by it
