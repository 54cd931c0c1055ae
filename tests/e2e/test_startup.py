"""An agent started while the backend is down waits for it, then works as usual."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.agent import agent_env, start_agent, wait_agent
from tests.support.backend import free_port, start_backend
from tests.support.e2e import Owner, wait_until

pytestmark = pytest.mark.e2e


def backend_cli(database_url: str, *args: str) -> str:
    """``training-backend ARGS`` on a database no server serves yet."""
    command = [sys.executable, "-m", "training_backend.cli", *args, "--database-url", database_url]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout


def test_a_backend_down_at_start_is_waited_for(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'backend.sqlite3'}"
    backend_cli(database_url, "users", "create", "sam")
    key = backend_cli(database_url, "keys", "create", "--user", "sam").strip()
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({"model_name": "demo", "config": {"type": "demo"}}))
    job_id = backend_cli(database_url, "jobs", "submit", "--user", "sam", "--file", str(job_file))
    port = free_port()
    home = tmp_path / "agent"
    env = agent_env(home, backend_url=f"http://127.0.0.1:{port}", api_key=key)

    agent = start_agent(env, "--max-jobs", "1")
    try:
        log_file = home / "logs" / "agent.log"
        wait_until(
            lambda: log_file.exists() and "cannot reach" in log_file.read_text(),
            "the agent found the backend down",
        )
        assert agent.poll() is None  # still running, not given up
        with start_backend(tmp_path / "backend", database_url=database_url, port=port) as backend:
            code, output = wait_agent(agent, timeout_s=120)
            state = Owner(backend, key).state(job_id.strip())
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()

    assert code == 0, output
    assert state["status"] == "completed", state
