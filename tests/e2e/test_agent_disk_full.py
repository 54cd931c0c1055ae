"""The agent's own disk full (issue 16): a small file system (tmpfs) under the agent's
state directory, where its outbox lives, filled while a job runs.

The agent says so in one sentence in its log and among ``training-agent status``'s
problems; the job's output waits in memory meanwhile (the outbox can store nothing), and
once space is back every line and point is stored and delivered exactly once, in order.
That no job is claimed while the outbox is full is checked in
``tests/unit/reporting/test_disk_full.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.agent import agent_env
from tests.support.backend import start_backend
from tests.support.e2e import Owner, make_user_and_key, wait_until
from tests.support.job_faults import (
    OUTAGE_S,
    WAIT_S,
    assert_delivered_once,
    fill,
    small_file_system,
    start_agent,
    stored_steps,
    submit_job,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

DISK_FULL = "the agent's disk is full: reports cannot be stored in"


def status_json(owner: Owner, here: Path) -> dict[str, object]:
    env = agent_env(here / "agent", backend_url=owner.backend.url, api_key=owner.key)
    done = subprocess.run(
        [sys.executable, "-m", "training_agent", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    snapshot: dict[str, object] = json.loads(done.stdout)
    return snapshot


def test_agent_disk_full_holds_the_output_and_loses_nothing(tmp_path: Path) -> None:
    with (
        small_file_system(tmp_path / "agent" / "state") as state,
        start_backend(tmp_path / "backend") as backend,
    ):
        owner = Owner(backend, make_user_and_key(backend, "ada"))
        job_id = submit_job(owner)
        agent = start_agent(owner, tmp_path, backend.url)
        try:
            stored_steps(owner, job_id, 10)
            filler = fill(state)
            log = tmp_path / "agent.out"
            wait_until(
                lambda: DISK_FULL in log.read_text(), "the agent says its disk is full", WAIT_S
            )
            problems = status_json(owner, tmp_path)["problems"]
            assert isinstance(problems, dict), problems
            assert str(problems.get("outbox", "")).startswith(DISK_FULL), problems
            time.sleep(OUTAGE_S)  # the trainer goes on writing meanwhile
            filler.unlink()
        except BaseException:
            agent.kill()
            raise
        output = assert_delivered_once(owner, job_id, agent, tmp_path)
        assert output.count(DISK_FULL) == 1, output
        assert "its held reports are stored" in output, output
