"""The agent's own disk full (issue 16): the outbox cannot write.

The disk is made full for real inside SQLite: ``PRAGMA max_page_count`` caps the file,
and a write past it fails with SQLITE_FULL ("database or disk is full"), as a full file
system makes it fail. The outbox says so in one sentence and keeps ``full`` set until a
write goes through; the job's sink holds every report in memory, in order, and stores
them once space is back; the daemon claims nothing meanwhile (``DiskRoom``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from training_agent.disk_room import DiskRoom
from training_agent.errors import StateError
from training_agent.jobs import JobOutcome, JobStatus
from training_agent.reporting import sink
from training_agent.reporting.outbox import Outbox
from training_agent.reporting.sink import OUTBOX, JobReports
from training_agent.status.state import AgentState

DISK_FULL = "the agent's disk is full: reports cannot be stored in"


class Disk:
    """The outbox's room: full (no page more) or free again."""

    def __init__(self, outbox: Outbox) -> None:
        self._db = outbox._db  # the one connection: the cap is per connection

    def fill(self) -> None:
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        self._db.execute(f"PRAGMA max_page_count = {pages}")

    def free(self) -> None:
        self._db.execute("PRAGMA max_page_count = 1073741823")


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.sqlite3")
    box.open_job("job-1", "tok")
    yield box
    box.close()


@pytest.fixture
def state() -> AgentState:
    return AgentState(agent_id="agent_0123456789abcdef", version="1", backend_url="http://b")


def fill_up(outbox: Outbox, disk: Disk) -> int:
    """Lines stored until not even a short one fits; a write that failed stored nothing."""
    disk.fill()
    stored = 0
    for padding in (300, 0):
        with pytest.raises(StateError, match=DISK_FULL):
            while True:
                outbox.append_logs("job-1", [f"line {stored} " + "x" * padding])
                stored += 1
    return stored


def all_lines(outbox: Outbox) -> list[str]:
    pending = outbox.pending_logs("job-1", limit=100_000)
    return [] if pending is None else [line.split(" x")[0].strip() for line in pending.lines]


def test_a_full_disk_is_said_once_and_stores_nothing_half(outbox: Outbox) -> None:
    disk = Disk(outbox)
    stored = fill_up(outbox, disk)
    assert outbox.full is not None and outbox.full.startswith(DISK_FULL)
    assert not outbox.has_room()
    assert all_lines(outbox) == [f"line {n}" for n in range(stored)]  # nothing of the last
    disk.free()
    assert outbox.has_room() and outbox.full is None
    outbox.append_logs("job-1", ["after"])
    assert all_lines(outbox)[-1] == "after"


def test_the_job_output_waits_in_memory_in_order_until_space_is_back(
    outbox: Outbox, state: AgentState, caplog: pytest.LogCaptureFixture
) -> None:
    disk = Disk(outbox)
    reports = JobReports(outbox, state, "job-1", wake=lambda: None)
    reports.started(model_name="tiny")
    stored = fill_up(outbox, disk)

    for step in range(1, 4):
        reports.log(f"held {step}")
        reports.metric({"step": step, "epoch": 0.1, "train_loss": 1.0})
    reports.ended(JobOutcome(JobStatus.COMPLETED, exit_code=0))

    assert reports.held == 7
    assert state.problems[OUTBOX].startswith(DISK_FULL)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and DISK_FULL in errors[0]
    reports.retry_held()  # still full: nothing moves, nothing is lost
    assert reports.held == 7

    disk.free()
    reports.retry_held()
    assert reports.held == 0 and OUTBOX not in state.problems
    held = [f"held {n}" for n in range(1, 4)]
    assert all_lines(outbox) == [f"line {n}" for n in range(stored)] + held
    assert [p["step"] for p in outbox.pending_metrics("job-1", limit=10)] == [1, 2, 3]
    assert [s.status for s in outbox.pending_statuses("job-1")] == [
        JobStatus.RUNNING,
        JobStatus.COMPLETED,
    ]


def test_past_the_memory_bound_lines_are_counted_in_a_notice(
    outbox: Outbox, state: AgentState, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sink, "MAX_HELD", 3)
    disk = Disk(outbox)
    reports = JobReports(outbox, state, "job-1", wake=lambda: None)
    stored = fill_up(outbox, disk)
    for n in range(5):
        reports.log(f"held {n}")
    reports.metric({"step": 1, "epoch": 0.1})  # metrics and statuses are always kept
    disk.free()
    reports.retry_held()
    lines = all_lines(outbox)[stored:]
    assert lines[:3] == ["held 0", "held 1", "held 2"]
    assert lines[3].startswith("[training-agent] 2 log lines were skipped here")
    assert outbox.pending_metrics("job-1", limit=10)[0]["step"] == 1


async def test_held_reports_retry_by_themselves(
    outbox: Outbox, state: AgentState, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sink, "RETRY_HELD_S", 0.01)
    disk = Disk(outbox)
    reports = JobReports(outbox, state, "job-1", wake=lambda: None)
    fill_up(outbox, disk)
    reports.log("held")
    assert reports.held == 1
    disk.free()
    for _ in range(200):
        if reports.held == 0:
            break
        await asyncio.sleep(0.01)
    assert reports.held == 0
    assert all_lines(outbox)[-1] == "held"


def test_no_job_is_claimed_while_the_outbox_disk_is_full(
    outbox: Outbox, state: AgentState, tmp_path: Path
) -> None:
    room = DiskRoom(tmp_path, 0.0, outbox, state)
    assert room.ok()
    disk = Disk(outbox)
    fill_up(outbox, disk)
    assert not room.ok()
    assert state.problems[OUTBOX].startswith(DISK_FULL)
    disk.free()
    assert room.ok()
    assert OUTBOX not in state.problems


def test_a_job_given_up_while_its_reports_wait_drops_them_without_raising(
    outbox: Outbox, state: AgentState
) -> None:
    disk = Disk(outbox)
    reports = JobReports(outbox, state, "job-1", wake=lambda: None)
    fill_up(outbox, disk)
    reports.log("held")
    reports.lost("the backend gave the job up")  # its outbox row may not be writable now
    assert reports.held == 0
    disk.free()
    reports.retry_held()
    assert "held" not in all_lines(outbox)
