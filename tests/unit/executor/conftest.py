"""Fixtures for the executor tests: a recording sink, runners, and real child processes."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Protocol

import psutil
import pytest

from tests.support.executor import JOB_TOKEN, Lines, RecordingSink, alive, child_argv, read_pids
from training_agent.executor.process import ChildProcess, LineCallback
from training_agent.executor.runner import JobRunner
from training_agent.jobs import ClaimedJob


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


class MakeRunner(Protocol):
    def __call__(
        self,
        config: dict[str, Any],
        *,
        allow_command_jobs: bool = True,
        cancel_grace_s: float = 0.5,
        job_id: str = "job-1",
    ) -> JobRunner: ...


@pytest.fixture
def jobs_dir(tmp_path: Path) -> Path:
    return tmp_path / "jobs"


@pytest.fixture
def make_runner(jobs_dir: Path, sink: RecordingSink) -> MakeRunner:
    """Builds a JobRunner for a config, reporting into the test's ``sink``."""

    def make(
        config: dict[str, Any],
        *,
        allow_command_jobs: bool = True,
        cancel_grace_s: float = 0.5,
        job_id: str = "job-1",
    ) -> JobRunner:
        job = ClaimedJob(id=job_id, job_token=JOB_TOKEN, config=config)
        return JobRunner(
            job=job,
            jobs_dir=jobs_dir,
            sink=sink,
            allow_command_jobs=allow_command_jobs,
            cancel_grace_s=cancel_grace_s,
            training_python="/nonexistent/python",
        )

    return make


class Spawn(Protocol):
    async def __call__(
        self, *args: str, on_line: LineCallback | None = None
    ) -> tuple[ChildProcess, Lines]: ...


@pytest.fixture
async def spawn(tmp_path: Path) -> AsyncIterator[Spawn]:
    """Starts the helper child in a mode; kills whatever is left at the end of the test."""
    children: list[ChildProcess] = []

    async def start(*args: str, on_line: LineCallback | None = None) -> tuple[ChildProcess, Lines]:
        lines = Lines()
        child = await ChildProcess.start(
            child_argv(*args), cwd=tmp_path, env=dict(os.environ), on_line=on_line or lines.record
        )
        children.append(child)
        return child, lines

    yield start
    for child in children:
        await child.stop(0)


@pytest.fixture
def pid_file(tmp_path: Path) -> Iterator[Path]:
    """Where spawn-grandchild writes its pids; the grandchild is killed at the end."""
    path = tmp_path / "pids.txt"
    yield path
    if path.exists():
        for pid in read_pids(path):
            if alive(pid):
                psutil.Process(pid).kill()
