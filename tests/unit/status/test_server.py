"""The status API on a real server on a loopback socket: the status file, stopping, and the
live event stream (ASGITransport buffers whole bodies, so it cannot show a stream).
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import cast

import psutil
import pytest

from tests.unit.status.conftest import FakeController
from training_agent.errors import AgentNotRunningError, StatusApiError
from training_agent.status.client import StatusClient, StatusEvent, find_agent
from training_agent.status.events import EventStream
from training_agent.status.file import StatusFile
from training_agent.status.server import StatusApi, start_status_api
from training_agent.status.state import AgentState


@pytest.fixture
async def served(
    tmp_path: Path, state: AgentState, controller: FakeController
) -> AsyncIterator[StatusApi]:
    api = StatusApi(state=state, controller=controller, status_path=tmp_path / "status.json")
    await api.start()
    yield api
    await api.stop()


async def test_status_file_is_owner_only_and_leads_to_the_api(
    served: StatusApi, tmp_path: Path
) -> None:
    path = tmp_path / "status.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = json.loads(path.read_text())
    assert raw["pid"] == os.getpid()
    assert raw["url"] == f"http://127.0.0.1:{raw['port']}"
    assert len(raw["token"]) >= 43  # 32 random bytes
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temporary file left

    async with StatusClient(find_agent(path)) as client:
        snapshot = await client.status()
    assert snapshot["agent_id"] == "agent_0123456789abcdef"


async def test_stop_removes_the_file_and_the_port_closes(
    tmp_path: Path, state: AgentState, controller: FakeController
) -> None:
    path = tmp_path / "status.json"
    api = StatusApi(state=state, controller=controller, status_path=path)
    found = await api.start()
    await api.stop()
    assert not path.exists()
    with pytest.raises(AgentNotRunningError, match="no agent is running"):
        await StatusClient(found).status()


async def test_a_wrong_token_is_a_readable_error(served: StatusApi, tmp_path: Path) -> None:
    assert served.file is not None
    forged = StatusFile(**{**served.file.__dict__, "token": "x" * 43})
    async with StatusClient(forged) as client:
        with pytest.raises(StatusApiError, match="missing or wrong bearer token"):
            await client.status()


async def next_event(events: AsyncIterator[StatusEvent], name: str) -> StatusEvent:
    async def find() -> StatusEvent:
        async for event in events:
            if event.name == name:
                return event
        raise AssertionError(f"the stream ended before a {name!r} event")

    return await asyncio.wait_for(find(), 10)


async def test_events_send_the_snapshot_then_coalesced_changes(
    served: StatusApi, tmp_path: Path, state: AgentState
) -> None:
    async with StatusClient(find_agent(tmp_path / "status.json")) as client:
        events = cast(AsyncGenerator[StatusEvent, None], client.events())
        first = await asyncio.wait_for(events.__anext__(), 10)
        assert first.name == "status"
        assert first.data["jobs"][0]["step"] == 3

        # 200 changes with no await in between: the stream sends them as one batch.
        for step in range(4, 204):
            state.job_metric("job-1", {"step": step, "epoch": 0.5})
        state.job_log("job-1", "done with the batch")

        metrics = await asyncio.wait_for(events.__anext__(), 10)
        log = await asyncio.wait_for(events.__anext__(), 10)
        status = await asyncio.wait_for(events.__anext__(), 10)
        assert metrics.name == "metrics"
        assert metrics.data["job_id"] == "job-1"
        assert [p["step"] for p in metrics.data["points"]] == list(range(4, 204))
        assert (log.name, log.data["lines"]) == ("log", ["done with the batch"])
        assert log.data["first_line"] == 1  # the fixture's line was line 0
        assert status.name == "status"
        assert status.data["jobs"][0]["step"] == 203

        state.set_draining(True)
        later = await next_event(events, "status")
        assert later.data["draining"] is True
        assert int(later.id or 0) > int(status.id or 0)
        await events.aclose()


async def test_stopping_the_api_ends_open_streams(
    tmp_path: Path, state: AgentState, controller: FakeController
) -> None:
    path = tmp_path / "status.json"
    api = StatusApi(state=state, controller=controller, status_path=path)
    await api.start()
    async with StatusClient(find_agent(path)) as client:
        events = client.events()
        assert (await asyncio.wait_for(events.__anext__(), 10)).name == "status"
        await asyncio.wait_for(api.stop(), 10)
        rest = [event async for event in events]  # ends instead of hanging
    assert all(event.name in {"status", "metrics", "log"} for event in rest)


async def test_an_unwritable_status_file_leaves_the_agent_running_without_the_api(
    tmp_path: Path, state: AgentState, controller: FakeController, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    api = await start_status_api(
        state=state, daemon=controller, status_path=blocker / "status.json"
    )
    assert api is None
    assert "status API not started" in caplog.text


async def test_a_live_agent_on_the_same_state_dir_is_warned_about(
    tmp_path: Path, state: AgentState, controller: FakeController, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "status.json"
    parent = psutil.Process(os.getpid()).parent()
    assert parent is not None
    other = StatusFile(parent.pid, parent.create_time(), 1, "x" * 43, "agent_y", "0", 0.0)
    other.write(path)
    api = StatusApi(state=state, controller=controller, status_path=path)
    await api.start()
    await api.stop()
    assert f"another agent (pid {parent.pid}) uses the state directory" in caplog.text


async def test_the_event_stream_sends_at_most_once_per_coalesce_interval(
    state: AgentState,
) -> None:
    now = [1000.0]
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds
        await asyncio.sleep(0)

    stream = cast(
        AsyncGenerator[str, None],
        EventStream(
            state, asyncio.Event(), coalesce_s=0.1, clock=lambda: now[0], sleep=sleep
        ).stream(),
    )
    assert (await anext(stream)).startswith("retry:")
    assert "event: status" in await anext(stream)

    pending = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)  # the stream waits for a change now
    now[0] += 0.03  # a change 30 ms after the last send waits for the rest of the 100 ms
    state.set_draining(True)
    held = await pending
    assert "event: status" in held
    assert '"draining": true' in held
    assert sleeps == [pytest.approx(0.07)]

    pending = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    now[0] += 0.5  # a change long after the last send goes out at once
    state.set_draining(False)
    assert '"draining": false' in await pending
    assert sleeps[-1] == 0.0
    await stream.aclose()
