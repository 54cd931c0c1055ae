"""A job that writes 300 lines and points over about nine seconds, run by the real agent,
and what the fault tests of the backend and of the agent's disk share (issue 16): a
small file system to fill, and the check that everything arrived exactly once.

    job_id = submit_job(owner)
    agent = start_agent(owner, tmp_path, backend.url)
    ...                                     # a fault, mid-job
    assert_delivered_once(owner, job_id, agent, tmp_path)
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.agent import agent_env
from tests.support.e2e import Owner, wait_until

STEPS = 300


def command_trainer(steps: int, pause_s: float) -> str:
    """Python source of a command job: ``steps`` metric points and log lines, one every
    ``pause_s`` seconds, with its progress declared first."""
    return textwrap.dedent(
        f"""
        import time
        from training_agent import report
        report.progress(total_steps={steps}, total_epochs=1)
        for step in range(1, {steps} + 1):
            print(f"line {{step}}", flush=True)
            report.metric(step, step / {steps}, train_loss=1.0 / step)
            time.sleep({pause_s})
        """
    )


TRAINER = command_trainer(STEPS, 0.03)  # nine seconds in all: each fault falls inside the run
WAIT_S = 150.0
OUTAGE_S = 3.0


def submit_job(owner: Owner, trainer: str = TRAINER, model_name: str = "backend-faults") -> str:
    """A command job running ``trainer`` (Python source) with the agent's interpreter."""
    config = {"type": "command", "command": [sys.executable, "-c", trainer]}
    answer = httpx.post(
        f"{owner.backend.url}/api/training/jobs",
        headers=owner.headers,
        json={"model_name": model_name, "config": config},
    )
    answer.raise_for_status()
    return str(answer.json()["job"]["id"])


def start_agent(owner: Owner, here: Path, url: str) -> subprocess.Popen[bytes]:
    env = agent_env(
        here / "agent",
        backend_url=url,
        api_key=owner.key,
        TRAINING_AGENT_ALLOW_COMMAND_JOBS="1",
        TRAINING_AGENT_HEARTBEAT_INTERVAL_SECONDS="1",
    )
    with (here / "agent.out").open("wb") as out:
        command = [sys.executable, "-m", "training_agent", "start", "--max-jobs", "1"]
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def assert_delivered_once(
    owner: Owner, job_id: str, agent: subprocess.Popen[bytes], here: Path
) -> str:
    try:
        code = agent.wait(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        agent.kill()
        code = agent.wait()
    output = (here / "agent.out").read_text(errors="replace")
    assert code == 0, output
    assert "Traceback" not in output, output
    assert owner.state(job_id)["status"] == "completed", output
    assert owner.steps(job_id) == list(range(1, STEPS + 1)), output
    assert owner.logs(job_id) == [f"line {n}" for n in range(1, STEPS + 1)], output
    assert output.count(f"job {job_id}: all reports delivered") == 1, output
    return output


def stored_steps(owner: Owner, job_id: str, at_least: int) -> None:
    wait_until(lambda: len(owner.steps(job_id)) >= at_least, f"{at_least} steps stored", WAIT_S)


@contextlib.contextmanager
def small_file_system(where: Path) -> Iterator[Path]:
    """A 32 MiB tmpfs at ``where`` (needs root and the right to mount), unmounted after."""
    where.mkdir(parents=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m,mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "--lazy", str(where)], check=False)


def fill(directory: Path) -> Path:
    """A file that takes every free byte of ``directory``'s file system."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as out:
        for size in (1 << 20, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    out.write(b"\0" * size)
    return filler
