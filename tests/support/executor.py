"""What the executor tests share: the helper child, a recording sink, polling helpers."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

CHILD_SCRIPT = Path(__file__).with_name("child.py")
JOB_TOKEN = "job-token-that-must-never-leak"


def child_argv(*args: str) -> list[str]:
    """The argv that runs tests/support/child.py in one of its modes."""
    return [sys.executable, str(CHILD_SCRIPT), *args]


def command_job(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """A command job config running the helper child."""
    return {"type": "command", "command": child_argv(*args), "env": env or {}}


def alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie does not (here PID 1 never reaps orphans)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll ``predicate`` until it holds; fail the test after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.01)


@dataclass
class RecordingSink:
    """A JobSink that keeps every call."""

    lines: list[str] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    progress_calls: list[tuple[int | None, float | None]] = field(default_factory=list)

    def log(self, line: str) -> None:
        self.lines.append(line)

    def metric(self, point: dict[str, Any]) -> None:
        self.metrics.append(point)

    def progress(self, *, total_steps: int | None, total_epochs: float | None) -> None:
        self.progress_calls.append((total_steps, total_epochs))


@dataclass
class Lines:
    """Lines a child printed, by stream."""

    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    def record(self, stream: str, line: str) -> None:
        getattr(self, stream).append(line)


def read_pids(path: Path) -> tuple[int, int]:
    """(leader, grandchild) as written by the spawn-grandchild mode."""
    leader, grandchild = path.read_text().split()
    return int(leader), int(grandchild)
