"""The agent is SIGKILLed mid-job; its next start cleans up and tells the platform.

The trainer and its grandchild (in a session of its own) outlive the agent. The next
start kills every process carrying the job's tracking id, reports the job ``failed``
with "agent restarted during the job" exactly once, and drains the outbox; a third
start finds nothing left to do.
"""

from __future__ import annotations

import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from tests.support.agent import agent_env, start_agent, wait_agent
from tests.support.backend import BackendProcess
from tests.support.e2e import (
    Owner,
    journal,
    make_user_and_key,
    submit,
    tracked_processes,
    wait_until,
)
from tests.support.executor import CHILD_SCRIPT
from training_agent.journal import AGENT_RESTARTED

pytestmark = pytest.mark.e2e

REPORTED = "the agent restarted during the job; reporting it failed"


def outbox_rows(home: Path) -> dict[str, int]:
    """Rows left in the outbox, per table."""
    with sqlite3.connect(home / "state" / "outbox.sqlite3") as db:
        counts = {
            table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("logs", "held_logs", "metrics", "statuses")
        }
        counts["unfinished_jobs"] = db.execute(
            "SELECT COUNT(*) FROM jobs WHERE finished = 0"
        ).fetchone()[0]
    return counts


def test_a_sigkilled_agent_reports_the_job_failed_once_after_restart(
    backend: BackendProcess, tmp_path: Path
) -> None:
    key = make_user_and_key(backend, "kim")
    owner = Owner(backend, key)
    pid_file = tmp_path / "pids.txt"
    command = [sys.executable, str(CHILD_SCRIPT), "spawn-grandchild", str(pid_file), "wait"]
    job_id = submit(backend, tmp_path, "kim", {"type": "command", "command": command})
    home = tmp_path / "agent"
    env = agent_env(home, backend_url=backend.url, api_key=key)
    env["TRAINING_AGENT_ALLOW_COMMAND_JOBS"] = "1"

    first = start_agent(env)
    try:
        wait_until(pid_file.exists, "the trainer and its grandchild started")
        owner.wait_for(job_id, lambda s: s["status"] == "running", "the job reported running")
        tracking_id = journal(home, job_id)["tracking_id"]
        assert len(tracked_processes(tracking_id)) == 2  # leader and grandchild
    finally:
        first.send_signal(signal.SIGKILL)
        wait_agent(first)
    assert len(tracked_processes(tracking_id)) == 2  # they outlived the agent

    code, output = wait_agent(start_agent(env, "--idle-exit", "1"))

    assert code == 0, output
    assert output.count(REPORTED) == 1, output
    state = owner.state(job_id)
    assert (state["status"], state["error"]) == ("failed", AGENT_RESTARTED)
    assert tracked_processes(tracking_id) == []
    assert outbox_rows(home) == dict.fromkeys(
        ("logs", "held_logs", "metrics", "statuses", "unfinished_jobs"), 0
    )
    assert not (home / "state" / "jobs" / job_id).exists()

    code, output = wait_agent(start_agent(env, "--idle-exit", "1"))
    assert code == 0, output
    assert REPORTED not in output
    assert owner.state(job_id)["status"] == "failed"
