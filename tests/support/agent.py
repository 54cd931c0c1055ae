"""Start the real agent as a process, the way a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def agent_env(home: Path, *, backend_url: str, api_key: str, **extra: str) -> dict[str, str]:
    """The agent's environment: its own home, the backend and the key; nothing inherited
    that could point it elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINING_AGENT_")}
    env.update(
        TRAINING_AGENT_HOME=str(home),
        BACKEND_URL=backend_url,
        API_KEY=api_key,
        TRAINING_AGENT_MIN_POLL_INTERVAL_SECONDS="0.2",
        **extra,
    )
    return env


def start_agent(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "training_agent", "start", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_agent(proc: subprocess.Popen[str], timeout_s: float = 90) -> tuple[int, str]:
    """Wait for the agent to exit; its exit code and everything it printed."""
    try:
        output, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        raise AssertionError(f"the agent did not exit within {timeout_s}s:\n{output}") from None
    return proc.returncode, output
