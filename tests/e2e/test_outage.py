"""The backend goes away mid-job and comes back on the same database: nothing is lost.

While the backend is down the trainer keeps writing; every log line and metric point
waits in the agent's outbox and goes out once the backend answers again, each exactly
once and in order (log offsets and per-step metrics make the retries idempotent).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tests.support.agent import agent_env, start_agent, wait_agent
from tests.support.backend import BackendProcess
from tests.support.e2e import Owner, make_user_and_key, submit, wait_until
from tests.support.job_faults import command_trainer

pytestmark = pytest.mark.e2e

STEPS = 300
# Longer than the first retries of every report (1 s, then up to 2 s and 4 s), so the
# outage is really felt, and short enough to keep the suite fast.
OUTAGE_S = 4.0

TRAINER = command_trainer(STEPS, 0.02)  # six seconds of steps, the outage inside them


def test_an_outage_mid_job_loses_and_duplicates_nothing(
    backend: BackendProcess, tmp_path: Path
) -> None:
    key = make_user_and_key(backend, "olga")
    owner = Owner(backend, key)
    job_id = submit(
        backend, tmp_path, "olga", {"type": "command", "command": [sys.executable, "-c", TRAINER]}
    )
    env = agent_env(
        tmp_path / "agent",
        backend_url=backend.url,
        api_key=key,
        TRAINING_AGENT_ALLOW_COMMAND_JOBS="1",
        TRAINING_AGENT_HEARTBEAT_INTERVAL_SECONDS="1",
    )
    agent = start_agent(env, "--max-jobs", "1")
    try:
        owner.wait_for(job_id, lambda s: (s.get("current_step") or 0) >= 20, "20 steps reported")

        backend.stop_server()
        outbox = tmp_path / "agent" / "state" / "outbox.sqlite3"
        stopped_at = time.monotonic()
        wait_until(lambda: time.monotonic() - stopped_at >= OUTAGE_S, "the outage")
        backend.start_again()
        assert outbox.exists()
    finally:
        code, output = wait_agent(agent, timeout_s=120)

    assert code == 0, output
    assert "cannot reach" in output  # the agent did meet the outage
    state = owner.state(job_id)
    assert state["status"] == "completed", state
    assert owner.steps(job_id) == list(range(1, STEPS + 1))
    assert owner.logs(job_id) == [f"line {step}" for step in range(1, STEPS + 1)]
