"""The daemon's side of the self-update: a ready build waits for the running job, which
completes and is reported; then the daemon exits ``EXIT_UPDATE`` for the switch. A stop
signal that comes meanwhile is a plain stop: the job still completes, the exit is 0."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_backend import FakeBackend
from tests.unit.test_daemon import (
    POLL,
    MakeAgent,
    VirtualTime,
    offer,
    run,
    statuses,
    until,
    wired_agent,
)
from training_agent.agent import Agent
from training_agent.daemon import EXIT_OK, EXIT_UPDATE
from training_agent.paths import AgentPaths


@pytest.fixture
async def make_agent(tmp_path: Path, backend: FakeBackend) -> AsyncIterator[MakeAgent]:
    agents: list[Agent] = []

    def make(**settings: Any) -> Agent:
        paths = AgentPaths.under(tmp_path / "agent")
        agents.append(wired_agent(paths, backend, VirtualTime(), **settings))
        return agents[-1]

    yield make
    for agent in agents:
        await agent.aclose()


def waiting_job(flag: Path) -> dict[str, object]:
    """A command job that runs until ``flag`` exists."""
    return {
        "type": "command",
        "command": ["sh", "-c", f"while [ ! -e '{flag}' ]; do sleep 0.05; done"],
    }


async def test_a_ready_update_waits_for_the_running_job_then_exits_for_the_switch(
    make_agent: MakeAgent, backend: FakeBackend, tmp_path: Path
) -> None:
    flag = tmp_path / "finish"
    offer(backend, "job-1", "job-2", config=waiting_job(flag))
    daemon = make_agent().daemon
    task = asyncio.create_task(run(daemon))
    await until(lambda: bool(statuses(backend, "job-1")))
    polls = len(backend.calls(POLL))

    daemon.stop_for_update()
    await asyncio.sleep(0.2)
    assert not task.done()  # the job runs on
    flag.touch()

    assert await task == EXIT_UPDATE
    assert statuses(backend, "job-1")[-1]["status"] == "completed"
    assert statuses(backend, "job-2") == []  # nothing new claimed before the switch
    assert len(backend.calls(POLL)) >= polls


async def test_a_stop_signal_while_the_update_waits_is_a_plain_stop(
    make_agent: MakeAgent, backend: FakeBackend, tmp_path: Path
) -> None:
    flag = tmp_path / "finish"
    offer(backend, "job-1", config=waiting_job(flag))
    daemon = make_agent().daemon
    task = asyncio.create_task(run(daemon))
    await until(lambda: bool(statuses(backend, "job-1")))

    daemon.stop_for_update()
    daemon.request_stop()  # the operator's first stop: not a second, forcing one
    await asyncio.sleep(0.2)
    flag.touch()

    assert await task == EXIT_OK
    assert statuses(backend, "job-1")[-1]["status"] == "completed"
