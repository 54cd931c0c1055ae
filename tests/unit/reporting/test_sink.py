"""A job's one sink: every report lands in the outbox and in the agent state, once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from training_agent.jobs import JobOutcome, JobStatus
from training_agent.reporting.outbox import Outbox
from training_agent.reporting.sink import JobReports
from training_agent.status.state import AgentState, JobViewStatus


class Wakes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.sqlite3")
    box.open_job("job-1", "tok")
    yield box
    box.close()


@pytest.fixture
def state() -> AgentState:
    return AgentState(agent_id="agent_0123456789abcdef", version="1", backend_url="http://b")


def statuses(outbox: Outbox) -> list[tuple[JobStatus, str | None, dict[str, object]]]:
    return [(s.status, s.error, s.details) for s in outbox.pending_statuses("job-1")]


def test_what_the_trainer_reports_lands_in_both_places(outbox: Outbox, state: AgentState) -> None:
    wakes = Wakes()
    reports = JobReports(outbox, state, "job-1", wake=wakes)

    reports.started(model_name="tiny")
    reports.progress(total_steps=10, total_epochs=1.0)
    reports.metric({"step": 1, "epoch": 0.1, "train_loss": 2.0})
    reports.log("hello")

    assert statuses(outbox) == [
        (JobStatus.RUNNING, None, {}),
        (JobStatus.RUNNING, None, {"total_steps": 10, "total_epochs": 1.0}),
    ]
    assert outbox.pending_metrics("job-1", limit=10) == [
        {"step": 1, "epoch": 0.1, "train_loss": 2.0}
    ]
    logs = outbox.pending_logs("job-1", limit=10)
    assert logs is not None and logs.lines == ["hello"]
    view = state.jobs["job-1"]
    assert (view.status, view.model_name, view.total_steps) == ("running", "tiny", 10)
    assert state.history("job-1") == [{"step": 1, "epoch": 0.1, "train_loss": 2.0}]
    assert state.log_tail("job-1") == (0, ["hello"])
    assert wakes.count == 4  # one per stored report


def test_progress_without_totals_sends_nothing(outbox: Outbox, state: AgentState) -> None:
    reports = JobReports(outbox, state, "job-1", wake=Wakes())
    reports.started(model_name=None)

    reports.progress(total_steps=None, total_epochs=None)

    assert len(statuses(outbox)) == 1


def test_pause_and_cancel_then_the_end(outbox: Outbox, state: AgentState) -> None:
    reports = JobReports(outbox, state, "job-1", wake=Wakes())
    reports.started(model_name=None)

    reports.status(JobStatus.PAUSED)
    paused = state.jobs["job-1"].status
    reports.cancelling("cancelled on this machine")
    assert (paused, state.jobs["job-1"].status) == (
        JobViewStatus.PAUSED,
        JobViewStatus.CANCELLING,
    )
    reports.ended(
        JobOutcome(JobStatus.CANCELLED, exit_code=143, reason="cancelled", outputs=("out/",))
    )

    assert statuses(outbox)[1:] == [
        (JobStatus.PAUSED, None, {}),
        (JobStatus.CANCELLED, "cancelled", {"exit_code": 143, "outputs": ["out/"]}),
    ]
    assert "job-1" not in state.jobs
    assert (state.recent[0].status, state.recent[0].error) == ("cancelled", "cancelled")
    assert state.jobs_finished == {"cancelled": 1}


def test_a_lost_job_sends_nothing_more(outbox: Outbox, state: AgentState) -> None:
    reports = JobReports(outbox, state, "job-1", wake=Wakes())
    reports.started(model_name=None)
    reports.log("a line that never goes out")

    reports.lost("the backend gave the job up")

    assert outbox.unfinished_jobs() == []
    assert (state.recent[0].status, state.recent[0].error) == (
        "failed",
        "the backend gave the job up",
    )


def test_a_failed_outbox_write_is_logged_once_and_never_raises(
    outbox: Outbox, state: AgentState, caplog: pytest.LogCaptureFixture
) -> None:
    wakes = Wakes()
    reports = JobReports(outbox, state, "job-1", wake=wakes)
    reports.started(model_name=None)
    outbox.close()

    reports.log("one")
    reports.log("two")

    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "cannot store a log report" in errors[0]
    assert state.log_tail("job-1") == (0, ["one", "two"])  # the local view still has them
    assert wakes.count == 1  # only the report that was stored
