"""Jobs go where they ask, with the real backend and two real agents with different labels:
each labelled job reaches the agent that has its label, and a job nobody matches stays
pending and says why."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.agent import agent_env, start_agent, wait_agent
from tests.support.backend import BackendProcess
from tests.support.e2e import job_json, make_user_and_key

pytestmark = pytest.mark.e2e

HELLO = {"type": "command", "command": [sys.executable, "-c", "print('hello')"]}


def submit_with_labels(backend: BackendProcess, tmp_path: Path, *labels: str) -> str:
    path = tmp_path / f"job-{'-'.join(labels)}.json"
    path.write_text(json.dumps({"config": HELLO}))
    flags = [part for label in labels for part in ("--label", label)]
    return backend.cli("jobs", "submit", "--user", "lab", "--file", str(path), *flags).strip()


def test_each_job_reaches_the_agent_with_its_labels(
    backend: BackendProcess, tmp_path: Path
) -> None:
    key = make_user_and_key(backend, "lab")
    # Submitted before either agent runs: each agent must be offered only its own job.
    gpu_job = submit_with_labels(backend, tmp_path, "gpu-a")
    cpu_job = submit_with_labels(backend, tmp_path, "cpu-b", "fast")
    nobodys = submit_with_labels(backend, tmp_path, "h100")
    homes = {"gpu-a": tmp_path / "agent-a", "cpu-b,fast": tmp_path / "agent-b"}
    agents = [
        start_agent(
            agent_env(
                home,
                backend_url=backend.url,
                api_key=key,
                TRAINING_AGENT_ALLOW_COMMAND_JOBS="1",
                TRAINING_AGENT_LABELS=labels,
            ),
            "--max-jobs",
            "1",
        )
        for labels, home in homes.items()
    ]
    for agent in agents:
        code, output = wait_agent(agent)
        assert code == 0, output

    ids = {
        labels: (home / "state" / "agent_id").read_text().strip() for labels, home in homes.items()
    }
    gpu, cpu = job_json(backend, gpu_job)["job"], job_json(backend, cpu_job)["job"]
    assert (gpu["status"], gpu["agent_id"]) == ("completed", ids["gpu-a"])
    assert (cpu["status"], cpu["agent_id"]) == ("completed", ids["cpu-b,fast"])
    status = httpx.get(
        f"{backend.url}/api/training/local/{nobodys}/status",
        headers={"Authorization": f"Bearer {key}"},
    ).json()
    assert status["status"] == "pending"
    assert status["waiting_for"] == "an agent with label h100 (none online)"
