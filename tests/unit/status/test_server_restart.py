"""The status API's server dies of an unexpected error: it is logged with its traceback
and served again on a new port, and ``status.json`` leads readers there (issue 16)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.unit.status.conftest import FakeController
from training_agent.status.client import StatusClient, find_agent
from training_agent.status.file import StatusFile
from training_agent.status.server import StatusApi, _LoopbackServer
from training_agent.status.state import AgentState
from training_agent.supervise import supervise


async def no_sleep(_delay: float) -> None:
    await asyncio.sleep(0)


async def test_a_dead_status_api_is_served_again(
    tmp_path: Path,
    state: AgentState,
    controller: FakeController,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real_main_loop = _LoopbackServer.main_loop
    crashed = asyncio.Event()

    async def main_loop(self: _LoopbackServer) -> None:
        if not crashed.is_set():  # the first server dies soon after it started
            await asyncio.sleep(0.2)
            crashed.set()
            raise OSError("the listening socket broke")
        await real_main_loop(self)

    monkeypatch.setattr(_LoopbackServer, "main_loop", main_loop)
    path = tmp_path / "status.json"
    api = StatusApi(state=state, controller=controller, status_path=path)
    first = await api.start()
    keeper = asyncio.create_task(
        supervise("the status API", api.serve, sleep=no_sleep, on_problem=state.set_problem)
    )
    try:
        async with asyncio.timeout(20):
            while not (crashed.is_set() and _port(path) not in (None, first.port)):
                await asyncio.sleep(0.05)
        async with StatusClient(find_agent(path)) as client:
            snapshot = await client.status()
        assert snapshot["problems"] == {
            "the status API": "the status API failed unexpectedly "
            "(OSError('the listening socket broke')); restarting it"
        }
    finally:
        await api.stop()
    await asyncio.wait_for(keeper, 10)  # a stop ends the supervision too
    assert state.problems == {}
    restarts = [r for r in caplog.records if "the status API failed unexpectedly" in r.getMessage()]
    assert len(restarts) == 1 and restarts[0].exc_info is not None


def _port(path: Path) -> int | None:
    found = StatusFile.read(path)
    return None if found is None else found.port
