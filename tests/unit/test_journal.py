"""Journals and the clean-up after a crash: reported failed once, leftovers killed."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.support.executor import CHILD_SCRIPT, alive
from training_agent.errors import StateError
from training_agent.executor.process import TRACKING_ENV
from training_agent.jobs import JobStatus
from training_agent.journal import (
    AGENT_RESTARTED,
    JobJournal,
    JournalStatus,
    load_journals,
    recover_jobs,
)
from training_agent.reporting.outbox import Outbox


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.sqlite3")
    yield box
    box.close()


@pytest.fixture
def orphan() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A process carrying a tracking id, in its own session, like a trainer left behind."""
    tracking_id = uuid.uuid4().hex
    process = subprocess.Popen(
        [sys.executable, str(CHILD_SCRIPT), "ignore-sigterm"],
        env={**os.environ, TRACKING_ENV: tracking_id},
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    yield process, tracking_id
    if process.poll() is None:
        process.kill()
    process.wait()


def test_a_journal_is_written_whole_and_owner_only(tmp_path: Path) -> None:
    journal = JobJournal(tmp_path / "jobs", "job-1")
    journal.start()
    journal.started(4242, "abc")
    data = json.loads(journal.path.read_text())
    assert data["job_id"] == "job-1" and data["status"] == "running"
    assert (data["pid"], data["tracking_id"]) == (4242, "abc")
    assert stat.S_IMODE(journal.path.stat().st_mode) == 0o600
    assert not list(journal.path.parent.glob("*.tmp"))
    journal.finish(JournalStatus.COMPLETED)
    assert json.loads(journal.path.read_text())["status"] == "completed"
    journal.remove()
    assert not journal.path.parent.exists()


def test_an_unsafe_job_id_gets_no_journal(tmp_path: Path) -> None:
    with pytest.raises(StateError):
        JobJournal(tmp_path, "../escape")


def test_recovery_reports_failed_once_and_kills_the_leftovers(
    tmp_path: Path, outbox: Outbox, orphan: tuple[subprocess.Popen[bytes], str]
) -> None:
    process, tracking_id = orphan
    outbox.open_job("job-1", "token")
    outbox.append_status("job-1", JobStatus.RUNNING)
    journal = JobJournal(tmp_path / "jobs", "job-1")
    journal.start()
    journal.started(process.pid, tracking_id)

    assert recover_jobs(tmp_path / "jobs", outbox) == ["job-1"]
    process.wait(timeout=10)
    assert not alive(process.pid)
    statuses = outbox.pending_statuses("job-1")
    assert [(s.status, s.error) for s in statuses] == [
        (JobStatus.RUNNING, None),
        (JobStatus.FAILED, AGENT_RESTARTED),
    ]
    assert load_journals(tmp_path / "jobs") == []
    assert recover_jobs(tmp_path / "jobs", outbox) == []  # nothing twice


def test_a_crash_after_the_report_but_before_the_removal_reports_nothing_more(
    tmp_path: Path, outbox: Outbox
) -> None:
    outbox.open_job("job-1", "token")
    journal = JobJournal(tmp_path / "jobs", "job-1")
    journal.start()
    outbox.append_status("job-1", JobStatus.FAILED, error=AGENT_RESTARTED)  # then a crash
    assert recover_jobs(tmp_path / "jobs", outbox) == []
    assert len(outbox.pending_statuses("job-1")) == 1
    assert not journal.path.exists()


def test_ended_unknown_and_unreadable_journals_are_only_removed(
    tmp_path: Path, outbox: Outbox
) -> None:
    jobs = tmp_path / "jobs"
    ended = JobJournal(jobs, "ended")
    ended.start()
    ended.finish(JournalStatus.COMPLETED)
    JobJournal(jobs, "never-opened").start()  # claimed, crashed before the outbox knew it
    (jobs / "broken").mkdir()
    (jobs / "broken" / "journal.json").write_text("{half")
    assert recover_jobs(jobs, outbox) == []
    assert outbox.pending_statuses("ended") == []
    assert list(jobs.iterdir()) == []


def test_a_live_process_that_merely_reuses_the_pid_is_left_alone(
    tmp_path: Path, outbox: Outbox
) -> None:
    outbox.open_job("job-1", "token")
    journal = JobJournal(tmp_path / "jobs", "job-1")
    journal.start()
    journal.started(os.getpid(), uuid.uuid4().hex)  # our pid, another tracking id
    assert recover_jobs(tmp_path / "jobs", outbox) == ["job-1"]
    assert psutil.Process(os.getpid()).is_running()
