"""``training-agent status`` against a real agent process (and a real backend)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.agent import agent_env, start_agent, wait_agent
from tests.support.backend import BackendProcess, free_port
from tests.support.e2e import LONG_DEMO, slow_demo_job
from training_agent.status.client import StatusClient
from training_agent.status.file import StatusFile, new_token, this_process_created_at

pytestmark = pytest.mark.e2e


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINING_AGENT_")}
    env["TRAINING_AGENT_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "training_agent", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def status_json(home: Path) -> dict[str, Any] | None:
    done = cli(home, "status", "--json")
    if done.returncode != 0:
        return None
    snapshot: dict[str, Any] = json.loads(done.stdout)
    return snapshot


def wait_until(
    home: Path, check: Callable[[dict[str, Any]], bool], what: str, timeout_s: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        snapshot = status_json(home)
        if snapshot is not None and check(snapshot):
            return snapshot
        time.sleep(0.2)
    raise AssertionError(f"{what}: not seen within {timeout_s:.0f}s; last: {status_json(home)}")


def test_status_of_a_running_agent(backend: BackendProcess, tmp_path: Path) -> None:
    backend.cli("users", "create", "sam")
    key = backend.cli("keys", "create", "--user", "sam", "--scope", "training").strip()
    home = tmp_path / "agent"
    agent = start_agent(agent_env(home, backend_url=backend.url, api_key=key))
    try:
        snapshot = wait_until(
            home, lambda s: s["connection"]["state"] == "connected", "a connected agent"
        )
        assert snapshot["backend_url"] == backend.url
        assert snapshot["agent_id"].startswith("agent_")
        assert snapshot["pid"] == agent.pid
        assert snapshot["connection"]["last_poll_latency_s"] > 0

        done = cli(home, "status")
        assert done.returncode == 0, done.stderr
        assert snapshot["agent_id"] in done.stdout
        assert backend.url in done.stdout
        assert "connected" in done.stdout
        assert "last poll" in done.stdout
        assert "running   0 jobs" in done.stdout

        drained = cli(home, "drain")
        assert drained.returncode == 0, drained.stderr
        assert "claiming  no (draining" in cli(home, "status").stdout
        resumed = cli(home, "resume")
        assert resumed.returncode == 0, resumed.stderr
        assert "claiming  yes" in cli(home, "status").stdout
    finally:
        agent.send_signal(signal.SIGTERM)
        code, output = wait_agent(agent)
    assert code == 0, output

    gone = cli(home, "status")
    assert gone.returncode == 3
    assert "no agent is running" in gone.stderr
    assert not (home / "state" / "status.json").exists()


def test_status_shows_a_running_job_and_cancel_stops_it(
    backend: BackendProcess, tmp_path: Path
) -> None:
    owner, job_id = slow_demo_job(backend, tmp_path, "tess", LONG_DEMO)
    key = owner.key
    home = tmp_path / "agent"
    agent = start_agent(agent_env(home, backend_url=backend.url, api_key=key))
    try:
        snapshot = wait_until(
            home,
            lambda s: any(j["id"] == job_id and (j["step"] or 0) > 5 for j in s["jobs"]),
            "the job's progress",
        )
        [job] = snapshot["jobs"]
        assert job["status"] == "running"
        assert job["model_name"] == "e2e"
        assert job["total_steps"] and job["step"] <= job["total_steps"]
        assert "train_loss" in job["last_metrics"]

        shown = cli(home, "status")
        assert shown.returncode == 0, shown.stderr
        line = next(line for line in shown.stdout.splitlines() if job_id in line)
        assert f"/{job['total_steps']} (" in line  # step N/total (P%)
        assert "epoch" in line
        assert "loss" in line
        assert "running   1 job" in shown.stdout

        cancelled = cli(home, "cancel", job_id)
        assert cancelled.returncode == 0, cancelled.stderr
        assert f"job {job_id} is being cancelled" in cancelled.stdout
        snapshot = wait_until(
            home, lambda s: any(j["id"] == job_id for j in s["recent_jobs"]), "the job's end"
        )
        assert snapshot["recent_jobs"][0]["status"] == "cancelled"
        assert snapshot["counters"]["jobs_finished"] == {"cancelled": 1}
        deadline = time.monotonic() + 30  # the report goes out through the outbox
        while owner.state(job_id)["status"] != "cancelled":
            assert time.monotonic() < deadline, owner.state(job_id)
            time.sleep(0.1)

        again = cli(home, "cancel", job_id)
        assert again.returncode == 1
        assert f"job {job_id} is not running" in again.stderr
    finally:
        agent.send_signal(signal.SIGTERM)
        code, output = wait_agent(agent)
    assert code == 0, output


def test_no_agent_exits_3_with_one_sentence(tmp_path: Path) -> None:
    done = cli(tmp_path / "nobody", "status")
    assert done.returncode == 3
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "no agent is running here" in done.stderr
    assert "training-agent start" in done.stderr


def test_a_status_file_left_by_a_dead_agent_exits_3(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    home = tmp_path / "agent"
    left = StatusFile(dead.pid, None, free_port(), new_token(), "agent_x", "0", time.time())
    left.write(home / "state" / "status.json")

    done = cli(home, "status", "--json")

    assert done.returncode == 3
    assert f"pid {dead.pid}" in done.stderr
    assert "has exited" in done.stderr


def test_nothing_listening_exits_3(tmp_path: Path) -> None:
    # A live pid (this test's) but no server on the port: e.g. an agent that is hung or
    # whose file another process replaced.
    home = tmp_path / "agent"
    created = this_process_created_at()
    left = StatusFile(os.getpid(), created, free_port(), new_token(), "agent_x", "0", time.time())
    left.write(home / "state" / "status.json")

    done = cli(home, "status")

    assert done.returncode == 3
    assert "nothing listens on" in done.stderr


def test_the_event_stream_follows_a_real_job(backend: BackendProcess, tmp_path: Path) -> None:
    owner, job_id = slow_demo_job(backend, tmp_path, "uma")
    key = owner.key
    home = tmp_path / "agent"
    agent = start_agent(agent_env(home, backend_url=backend.url, api_key=key))
    try:
        wait_until(home, lambda s: s["connection"]["state"] == "connected", "a connected agent")
        seen = asyncio.run(asyncio.wait_for(follow(home, job_id), 60))
    finally:
        agent.send_signal(signal.SIGTERM)
        code, output = wait_agent(agent)
    assert code == 0, output
    steps = [p["step"] for p in seen["points"]]
    assert steps == sorted(steps)
    assert len(steps) >= 20
    assert seen["last_status_step"] >= steps[0]


async def follow(home: Path, job_id: str) -> dict[str, Any]:
    """Metric points of ``job_id`` from the live stream until 20 arrived."""
    points: list[dict[str, Any]] = []
    async with StatusClient.connect(home / "state" / "status.json") as client:
        async for event in client.events():
            if event.name == "metrics" and event.data["job_id"] == job_id:
                points += event.data["points"]
            if event.name == "status" and len(points) >= 20:
                [job] = [j for j in event.data["jobs"] if j["id"] == job_id]
                return {"points": points, "last_status_step": job["step"]}
    raise AssertionError("the stream ended early")
