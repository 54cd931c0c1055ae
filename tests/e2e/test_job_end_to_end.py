"""The spine: the real backend and the real agent, as processes, over loopback HTTP."""

from __future__ import annotations

import json
import socket
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.support.agent import agent_env, start_agent, wait_agent
from tests.support.backend import BackendProcess
from tests.support.e2e import job_json, make_user_and_key, submit
from training_agent import __version__

pytestmark = pytest.mark.e2e

METRICS = 200
LOG_LINES = 500

# A command job: 200 metric events through the report helper, 500 log lines, and a check
# that no secret reached the child's environment. (All on stdout: lines of stdout and
# stderr keep their order within each stream, not across the two pipes.)
TRAINER = textwrap.dedent(
    f"""
    import os
    from training_agent import report
    report.progress(total_steps={METRICS}, total_epochs=2)
    for step in range(1, {METRICS} + 1):
        report.metric(step=step, epoch=step / {METRICS // 2}, train_loss=10.0 / step)
    secrets = [k for k in os.environ if k in ("API_KEY", "TRAINING_AGENT_API_KEY")]
    print("line 0 secrets-in-env=" + ",".join(secrets), flush=True)
    for i in range(1, {LOG_LINES}):
        print(f"line {{i}}", flush=True)
    """
)


def test_command_job_runs_end_to_end(backend: BackendProcess, tmp_path: Path) -> None:
    key = make_user_and_key(backend, "alice")
    job_id = submit(
        backend, tmp_path, "alice", {"type": "command", "command": [sys.executable, "-c", TRAINER]}
    )
    env = agent_env(
        tmp_path / "agent",
        backend_url=backend.url,
        api_key=key,
        TRAINING_AGENT_ALLOW_COMMAND_JOBS="1",
    )

    code, output = wait_agent(start_agent(env, "--max-jobs", "1"))

    assert code == 0, output
    assert key not in output
    shown = job_json(backend, job_id)
    assert shown["job"]["status"] == "completed", shown
    assert shown["job"]["total_steps"] == METRICS

    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=backend.url, headers=headers) as http:
        metrics = http.get(f"/api/training/local/{job_id}/metrics").json()["metrics"]
        logs = http.get(f"/api/training/local/{job_id}/logs", params={"limit": 10_000}).json()
    assert [m["step"] for m in metrics] == list(range(1, METRICS + 1))
    assert metrics[-1]["train_loss"] == pytest.approx(10.0 / METRICS)
    assert logs["total_lines"] == LOG_LINES
    assert logs["logs"] == ["line 0 secrets-in-env="] + [f"line {i}" for i in range(1, LOG_LINES)]

    agents = json.loads(backend.cli("agents", "list", "--json"))
    assert len(agents) == 1
    agent = agents[0]
    assert agent["hostname"] == socket.gethostname()
    assert agent["platform"] == "linux"
    assert agent["version"] == __version__
    last_poll = datetime.fromisoformat(agent["last_poll_at"])
    assert (datetime.now(UTC) - last_poll).total_seconds() < 60


def test_bad_jobs_fail_readably_and_the_agent_goes_on(
    backend: BackendProcess, tmp_path: Path
) -> None:
    key = make_user_and_key(backend, "bob")
    malformed = submit(backend, tmp_path, "bob", {"type": "command", "command": "not a list"})
    missing = submit(
        backend,
        tmp_path,
        "bob",
        {"type": "command", "command": ["no-such-command-for-training-agent"]},
    )
    events = textwrap.dedent(
        """
        import os, sys
        with open(os.environ["TRAINING_AGENT_EVENTS_FILE"], "a") as f:
            f.write("this is not json\\n")
        print("about to fail", file=sys.stderr)
        sys.exit(3)
        """
    )
    failing = submit(
        backend, tmp_path, "bob", {"type": "command", "command": [sys.executable, "-c", events]}
    )
    refused_env = agent_env(tmp_path / "agent", backend_url=backend.url, api_key=key)
    env = {**refused_env, "TRAINING_AGENT_ALLOW_COMMAND_JOBS": "1"}

    code, output = wait_agent(start_agent(env, "--max-jobs", "3"))

    assert code == 0, output
    errors = {job: job_json(backend, job)["job"] for job in (malformed, missing, failing)}
    assert all(job["status"] == "failed" for job in errors.values()), errors
    assert "command" in errors[malformed]["error"]
    assert "no-such-command-for-training-agent" in errors[missing]["error"]
    assert "exit code 3" in errors[failing]["error"]
    assert "about to fail" in errors[failing]["error"]
    with httpx.Client(base_url=backend.url, headers={"Authorization": f"Bearer {key}"}) as h:
        logs = h.get(f"/api/training/local/{failing}/logs", params={"limit": 100}).json()
    assert any("not valid JSON" in line for line in logs["logs"]), logs


def test_command_jobs_are_refused_unless_enabled(backend: BackendProcess, tmp_path: Path) -> None:
    key = make_user_and_key(backend, "carol")
    job_id = submit(backend, tmp_path, "carol", {"type": "command", "command": ["true"]})
    env = agent_env(tmp_path / "agent", backend_url=backend.url, api_key=key)

    code, output = wait_agent(start_agent(env, "--max-jobs", "1"))

    assert code == 0, output
    job = job_json(backend, job_id)["job"]
    assert job["status"] == "failed"
    assert "allow_command_jobs" in job["error"]
