"""What the owner asks on the platform reaches the running job: cancel, pause, resume."""

from __future__ import annotations

import re
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import psutil
import pytest

from tests.support.agent import agent_env, start_agent, wait_agent
from tests.support.backend import BackendProcess
from tests.support.e2e import Owner, make_user_and_key, submit, wait_until

pytestmark = pytest.mark.e2e

GRACE_S = 2.0

# The leader and its grandchild (same process group) both ignore SIGTERM: only the last
# step of the kill ladder can end them.
STUBBORN = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    grandchild = subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"])
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {grandchild.pid}")
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    while True:
        print("working", flush=True)
        time.sleep(0.5)
    """
)
CANCELLING = re.compile(r"^(\S+ \S+) .*job (\S+) cancelling: ", re.MULTILINE)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_cancel_on_the_platform_ends_the_whole_tree_within_grace_plus_2s(
    backend: BackendProcess, tmp_path: Path
) -> None:
    key = make_user_and_key(backend, "cora")
    owner = Owner(backend, key)
    pid_file = tmp_path / "pids.txt"
    command = [sys.executable, "-c", STUBBORN, str(pid_file)]
    job_id = submit(backend, tmp_path, "cora", {"type": "command", "command": command})
    home = tmp_path / "agent"
    env = agent_env(
        home,
        backend_url=backend.url,
        api_key=key,
        TRAINING_AGENT_ALLOW_COMMAND_JOBS="1",
        TRAINING_AGENT_CANCEL_GRACE_SECONDS=str(GRACE_S),
        TRAINING_AGENT_HEARTBEAT_INTERVAL_SECONDS="1",
    )
    agent = start_agent(env, "--max-jobs", "1")
    try:
        wait_until(pid_file.exists, "the trainer and its grandchild started")
        pids = [int(pid) for pid in pid_file.read_text().split()]
        owner.wait_for(job_id, lambda s: s["status"] == "running", "the job running")

        owner.control(job_id, "cancel")
        wait_until(lambda: not any(alive(pid) for pid in pids), "the whole tree gone")
        gone_at = datetime.now()
    finally:
        code, output = wait_agent(agent)

    assert code == 0, output
    started = [when for when, job in CANCELLING.findall(output) if job == job_id]
    assert len(started) == 1, output
    ladder_started = datetime.strptime(started[0], "%Y-%m-%d %H:%M:%S,%f")
    assert (gone_at - ladder_started).total_seconds() <= GRACE_S + 2.0
    state = owner.state(job_id)
    assert state["status"] == "cancelled", state


# 240 steps of 20 ms: long enough to pause in the middle.
SLOW_DEMO = {"type": "demo", "samples": 1600, "epochs": 3, "batch_size": 16, "step_delay_s": 0.02}


def paused_lines(owner: Owner, job_id: str) -> list[str]:
    return [line for line in owner.logs(job_id) if line.startswith("paused after step")]


def test_pause_and_resume_reach_the_demo_trainer(backend: BackendProcess, tmp_path: Path) -> None:
    key = make_user_and_key(backend, "pia")
    owner = Owner(backend, key)
    job_id = submit(backend, tmp_path, "pia", SLOW_DEMO)
    env = agent_env(
        tmp_path / "agent",
        backend_url=backend.url,
        api_key=key,
        TRAINING_AGENT_HEARTBEAT_INTERVAL_SECONDS="1",
    )
    agent = start_agent(env, "--max-jobs", "1")
    try:
        owner.wait_for(job_id, lambda s: (s.get("current_step") or 0) >= 5, "5 steps")
        owner.control(job_id, "pause")
        owner.wait_for(job_id, lambda s: s["status"] == "paused", "the job paused")
        wait_until(lambda: bool(paused_lines(owner, job_id)), "the trainer said it paused")
        step = int(paused_lines(owner, job_id)[0].rsplit(" ", 1)[1])
        wait_until(lambda: max(owner.steps(job_id)) == step, "the steps before the pause")
        settled_at = time.monotonic()
        wait_until(lambda: time.monotonic() - settled_at > 1.5, "a while paused")
        assert max(owner.steps(job_id)) == step  # no step while paused
        assert owner.state(job_id)["status"] == "paused"
        owner.control(job_id, "resume")
        owner.wait_for(job_id, lambda s: s["status"] != "paused", "the job resumed")
    finally:
        code, output = wait_agent(agent)

    assert code == 0, output
    assert owner.state(job_id)["status"] == "completed"
    assert owner.steps(job_id) == list(range(1, 241))
    logs = owner.logs(job_id)
    assert any(line.startswith("paused after step") for line in logs)
    assert any(line.startswith("resumed at step") for line in logs)
