"""Shared pieces of the agent benchmarks: a real backend and a real agent as processes.

Run the benchmarks from the repository root, with the project's virtualenv:

    .venv/bin/python benchmarks/agent_idle.py
    .venv/bin/python benchmarks/agent_ingest.py
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.backend import free_port, stop  # noqa: E402

# The same backend with ``long_poll`` left out of the features it advertises: what an
# agent sees from a backend without long polls (FineTune Lab's, or ours before it).
_WITHOUT_LONG_POLL = """
import sys
import training_backend.schemas.agent as agent
agent.FEATURES = tuple(f for f in agent.FEATURES if f != "long_poll")
from training_backend.cli import main
sys.exit(main(sys.argv[1:]))
"""


@dataclass(frozen=True)
class Backend:
    url: str
    database_url: str
    process: subprocess.Popen[bytes]

    def cli(self, *args: str) -> str:
        command = [sys.executable, "-m", "training_backend.cli", *args]
        command += ["--database-url", self.database_url]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout


@contextmanager
def backend(workdir: Path, *, long_poll: bool = True) -> Iterator[Backend]:
    """A ``training-backend serve`` process on a free loopback port and a new SQLite file."""
    database_url = f"sqlite:///{workdir / 'backend.sqlite3'}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    entry = ["-m", "training_backend.cli"] if long_poll else ["-c", _WITHOUT_LONG_POLL]
    command = [sys.executable, *entry, "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--database-url", database_url, "--log-level", "warning"]
    log = (workdir / "backend.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"backend not up: {(workdir / 'backend.log').read_text()}")
        yield Backend(url, database_url, process)
    finally:
        stop(process)
        log.close()


def user_and_key(server: Backend, name: str) -> str:
    server.cli("users", "create", name)
    return server.cli("keys", "create", "--user", name, "--scope", "training").strip()


def agent_env(home: Path, *, url: str, key: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINING_AGENT_")}
    env.update(TRAINING_AGENT_HOME=str(home), BACKEND_URL=url, API_KEY=key, **extra)
    return env


def start_agent(env: dict[str, str], *args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "training_agent", "start", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def agent_status(home: Path) -> dict[str, Any] | None:
    """The agent's snapshot through its status API, or None while it is not up."""
    try:
        found = json.loads((home / "state" / "status.json").read_text())
        response = httpx.get(
            f"{found['url']}/v1/status",
            headers={"Authorization": f"Bearer {found['token']}"},
            timeout=5,
        )
        snapshot: dict[str, Any] = response.json()
        return snapshot
    except (OSError, ValueError, KeyError, httpx.TransportError):
        return None


def wait_connected(home: Path, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        snapshot = agent_status(home)
        if snapshot and snapshot["connection"]["state"] == "connected":
            return snapshot
        time.sleep(0.2)
    raise RuntimeError("the agent did not connect")


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def machine() -> str:
    """One line about where the numbers come from."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = psutil.virtual_memory().total / 1024**3
    return (
        f"{datetime.now(UTC):%Y-%m-%d}, {psutil.cpu_count()} x {cpu}, {memory_gb:.0f} GB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )
