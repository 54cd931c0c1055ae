"""What the agent's end-to-end tests share: users, jobs, the owner's view of a job, waiting."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.support.backend import BackendProcess
from training_agent.executor.process import TRACKING_ENV

WAIT_S = 60.0  # generous: a loaded 2-core machine runs several suites at once


def make_user_and_key(backend: BackendProcess, name: str) -> str:
    backend.cli("users", "create", name)
    return backend.cli("keys", "create", "--user", name, "--scope", "training").strip()


def submit(
    backend: BackendProcess,
    tmp_path: Path,
    user: str,
    config: dict[str, Any],
    *,
    dataset: Path | None = None,
) -> str:
    """Submit a job with ``config`` for ``user``; its id. ``dataset`` is uploaded with it."""
    path = tmp_path / f"job-{len(list(tmp_path.glob('job-*.json')))}.json"
    path.write_text(json.dumps({"model_name": "e2e", "config": config}))
    extra = () if dataset is None else ("--dataset", str(dataset))
    return backend.cli("jobs", "submit", "--user", user, "--file", str(path), *extra).strip()


# About 600 steps of 10 ms: long enough to act on the agent mid-job, short enough to finish.
SLOW_DEMO = {"type": "demo", "samples": 3200, "epochs": 3, "batch_size": 16, "step_delay_s": 0.01}


# About 3,000 steps of 10 ms, for tests that cancel the job: a loaded machine cannot
# finish it before the test acts.
LONG_DEMO = SLOW_DEMO | {"epochs": 15}


def slow_demo_job(
    backend: BackendProcess, tmp_path: Path, user: str, config: dict[str, Any] = SLOW_DEMO
) -> tuple[Owner, str]:
    """A new user, their key's view of jobs, and one slow demo job of theirs."""
    owner = Owner(backend, make_user_and_key(backend, user))
    return owner, submit(backend, tmp_path, user, config)


def job_json(backend: BackendProcess, job_id: str) -> dict[str, Any]:
    """``training-backend jobs show ID --json``: the job and its report counts."""
    shown: dict[str, Any] = json.loads(backend.cli("jobs", "show", job_id, "--json"))
    return shown


class Owner:
    """The job owner's side of the API (API key)."""

    def __init__(self, backend: BackendProcess, key: str) -> None:
        self.backend = backend
        self.key = key
        self.headers = {"Authorization": f"Bearer {key}"}

    def _get(self, path: str, **params: Any) -> Any:
        response = httpx.get(self.backend.url + path, headers=self.headers, params=params)
        response.raise_for_status()
        return response.json()

    def state(self, job_id: str) -> dict[str, Any]:
        state: dict[str, Any] = self._get(f"/api/training/local/{job_id}/status")
        return state

    def steps(self, job_id: str) -> list[int]:
        metrics = self._get(f"/api/training/local/{job_id}/metrics")["metrics"]
        return [int(point["step"]) for point in metrics]

    def logs(self, job_id: str) -> list[str]:
        lines: list[str] = self._get(f"/api/training/local/{job_id}/logs", limit=10_000)["logs"]
        return lines

    def control(self, job_id: str, action: str) -> dict[str, Any]:
        response = httpx.post(
            f"{self.backend.url}/api/training/local/{job_id}/control",
            headers=self.headers,
            json={"action": action},
        )
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    def wait_for(
        self, job_id: str, predicate: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        """The job's state once ``predicate`` holds for it."""
        found: dict[str, Any] = {}

        def check() -> bool:
            found.update(self.state(job_id))
            return predicate(found)

        wait_until(check, what)
        return found


def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f}s: {what}")
        time.sleep(0.05)


def tracked_processes(tracking_id: str) -> list[psutil.Process]:
    """Live processes carrying ``tracking_id`` (zombies do not count)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if (
                proc.environ().get(TRACKING_ENV) == tracking_id
                and proc.status() != psutil.STATUS_ZOMBIE
            ):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def journal(home: Path, job_id: str) -> dict[str, Any]:
    """The agent's journal of ``job_id`` under the agent's home."""
    data: dict[str, Any] = json.loads(
        (home / "state" / "jobs" / job_id / "journal.json").read_text()
    )
    return data


SECRET_SERVICE_TOOLS = ("dbus-run-session", "gnome-keyring-daemon", "secret-tool")


def require_secret_service() -> None:
    """Skip without the Secret Service tools; under CI=true their absence is a failure."""
    missing = [tool for tool in SECRET_SERVICE_TOOLS if shutil.which(tool) is None]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must install the Secret Service tools; missing: {missing}")
        pytest.skip(f"no Secret Service tools here: {missing}")


def with_secret_service(
    script: str, env: dict[str, str], timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the sh ``script`` on a private D-Bus with an unlocked gnome-keyring (its
    collection goes to ``env["HOME"]``)."""
    unlock = "echo -n pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null"
    return subprocess.run(
        ["dbus-run-session", "--", "sh", "-c", f"set -e\n{unlock}\n{script}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
