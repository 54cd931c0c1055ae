"""A report the backend refuses for good is dropped, and delivery goes on (issue 16).

The first job's trainer says it paused and then exits 0: the agent reports ``paused``
and then ``completed``, which the real backend refuses with 409 ``INVALID_TRANSITION``
(a paused job may only resume, fail or be cancelled). Before the fix that refusal killed
the uploader, so nothing of the second job, nor of any later one, reached the platform.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.agent import agent_env, start_agent, wait_agent
from tests.support.backend import BackendProcess
from tests.support.e2e import Owner, make_user_and_key, submit

pytestmark = pytest.mark.e2e

PAUSES_THEN_EXITS = textwrap.dedent(
    """
    from training_agent import report
    print("before the pause", flush=True)
    report.paused()
    print("after the pause", flush=True)
    """
)
STEPS = 20
NEXT_JOB = textwrap.dedent(
    f"""
    from training_agent import report
    for step in range(1, {STEPS} + 1):
        print(f"line {{step}}", flush=True)
        report.metric(step, step / {STEPS}, train_loss=1.0 / step)
    """
)
DROPPED = "rejected by the backend, dropped"


def test_a_refused_status_is_dropped_and_the_next_job_is_delivered(
    backend: BackendProcess, tmp_path: Path
) -> None:
    key = make_user_and_key(backend, "rhea")
    owner = Owner(backend, key)
    first = submit(
        backend,
        tmp_path,
        "rhea",
        {"type": "command", "command": [sys.executable, "-c", PAUSES_THEN_EXITS]},
    )
    second = submit(
        backend, tmp_path, "rhea", {"type": "command", "command": [sys.executable, "-c", NEXT_JOB]}
    )
    env = agent_env(
        tmp_path / "agent",
        backend_url=backend.url,
        api_key=key,
        TRAINING_AGENT_ALLOW_COMMAND_JOBS="1",
    )

    code, output = wait_agent(start_agent(env, "--max-jobs", "2"))

    assert code == 0, output
    dropped = [line for line in output.splitlines() if DROPPED in line]
    assert len(dropped) == 1, output
    assert f"job {first} status completed" in dropped[0]
    assert "INVALID_TRANSITION" in dropped[0] or "paused to completed" in dropped[0]
    assert "Traceback" not in output, output
    # The first job keeps what the backend accepted: its log and its last good status.
    assert owner.logs(first) == ["before the pause", "after the pause"]
    assert owner.state(first)["status"] == "paused"
    # The second job arrives whole.
    assert owner.state(second)["status"] == "completed"
    assert owner.logs(second) == [f"line {step}" for step in range(1, STEPS + 1)]
    assert owner.steps(second) == list(range(1, STEPS + 1))
