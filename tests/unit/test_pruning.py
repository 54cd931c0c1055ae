"""Which finished jobs are removed, and how: a real outbox on disk, real work dirs."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from training_agent.executor.workspace import Workspace
from training_agent.jobs import JobStatus
from training_agent.pruning import DAY_S, JobPruner
from training_agent.reporting.outbox import Outbox

NOW = time.time()


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "state" / "outbox.sqlite3")
    yield box
    box.close()


@pytest.fixture
def jobs_dir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "jobs"


def ran(outbox: Outbox, jobs_dir: Path, job_id: str, *, finished_days_ago: float | None) -> Path:
    """A job that ran here: its work dir with a checkpoint, its outbox row; finished
    (every report delivered) that many days ago, or None: reports still waiting."""
    workspace = Workspace.for_job(jobs_dir, job_id)
    workspace.create({"type": "command"})
    (workspace.dir / "checkpoint-1").mkdir()
    (workspace.dir / "checkpoint-1" / "model.bin").write_bytes(b"w" * 1000)
    outbox.open_job(job_id, f"tok-{job_id}")
    outbox.append_status(job_id, JobStatus.COMPLETED)
    if finished_days_ago is not None:
        outbox.finish_job(job_id)
        with sqlite3.connect(outbox.path) as db:  # as if it finished back then
            db.execute(
                "UPDATE jobs SET finished_at = ? WHERE job_id = ?",
                (NOW - finished_days_ago * DAY_S, job_id),
            )
    return workspace.dir


def pruner(
    outbox: Outbox,
    jobs_dir: Path,
    *,
    in_use: Callable[[str], bool] = lambda _job_id: False,
    remove: Callable[[Path], None] = shutil.rmtree,
) -> JobPruner:
    """A pruner with the default retention (7 days), at ``NOW``."""
    return JobPruner(
        outbox=outbox, jobs_dir=jobs_dir, in_use=in_use, clock=lambda: NOW, remove=remove
    )


async def test_only_delivered_jobs_older_than_the_retention_not_in_use_go(
    outbox: Outbox, jobs_dir: Path
) -> None:
    old = ran(outbox, jobs_dir, "old", finished_days_ago=8)
    recent = ran(outbox, jobs_dir, "recent", finished_days_ago=6)
    waiting = ran(outbox, jobs_dir, "waiting", finished_days_ago=None)
    running = ran(outbox, jobs_dir, "running", finished_days_ago=30)

    prune = pruner(outbox, jobs_dir, in_use=lambda job_id: job_id == "running")
    assert prune.due() == ["old"]
    assert await prune.prune_once() == ["old"]

    assert not old.exists() and not outbox.has_job("old")
    for kept in (recent, waiting, running):
        assert (kept / "checkpoint-1" / "model.bin").exists()
    assert all(outbox.has_job(job_id) for job_id in ("recent", "waiting", "running"))
    assert await prune.prune_once() == []  # nothing more is due


async def test_a_job_with_a_report_left_is_never_due_even_when_marked_finished(
    outbox: Outbox, jobs_dir: Path
) -> None:
    folder = ran(outbox, jobs_dir, "job-1", finished_days_ago=30)
    with sqlite3.connect(outbox.path) as db:  # a row the finish did not take away
        db.execute("INSERT INTO metrics (job_id, step, point) VALUES ('job-1', 1, '{}')")
    assert await pruner(outbox, jobs_dir).prune_once() == []
    assert folder.exists() and outbox.has_job("job-1")


async def test_retention_zero_removes_a_job_as_soon_as_it_is_delivered(
    outbox: Outbox, jobs_dir: Path
) -> None:
    ran(outbox, jobs_dir, "job-1", finished_days_ago=None)
    prune = JobPruner(outbox=outbox, jobs_dir=jobs_dir, retention_days=0)
    assert prune.due() == []
    outbox.finish_job("job-1")  # its last report went out just now
    assert await prune.prune_once() == ["job-1"]
    assert not (jobs_dir / "job-1").exists()


async def test_a_folder_that_cannot_be_removed_is_one_warning_and_its_row_stays(
    outbox: Outbox, jobs_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = ran(outbox, jobs_dir, "job-1", finished_days_ago=8)

    def refuse(path: Path) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    prune = pruner(outbox, jobs_dir, remove=refuse)
    with caplog.at_level(logging.WARNING, logger="training_agent.pruning"):
        assert await prune.prune_once() == []
        assert await prune.prune_once() == []

    [warning] = caplog.records
    assert warning.getMessage().startswith("job job-1: cannot remove its work folder ")
    assert "Permission denied" in warning.getMessage() and warning.exc_info is None
    assert folder.exists() and outbox.has_job("job-1")  # tried again at the next pass
    assert await pruner(outbox, jobs_dir).prune_once() == ["job-1"]


async def test_a_missing_folder_still_lets_the_row_go_and_a_link_is_not_followed(
    outbox: Outbox, jobs_dir: Path, tmp_path: Path
) -> None:
    ran(outbox, jobs_dir, "gone", finished_days_ago=8)
    (jobs_dir / "gone").rename(tmp_path / "moved-away")
    ran(outbox, jobs_dir, "linked", finished_days_ago=8)
    elsewhere = tmp_path / "precious"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("x")
    link = jobs_dir / "linked"
    (tmp_path / "linked-dir").mkdir()
    link.rename(tmp_path / "linked-dir" / "old")
    link.symlink_to(elsewhere, target_is_directory=True)

    assert sorted(await pruner(outbox, jobs_dir).prune_once()) == ["gone", "linked"]
    assert not link.exists() and (elsewhere / "keep.txt").exists()
    assert not outbox.has_job("gone") and not outbox.has_job("linked")


async def test_a_row_from_before_finished_at_counts_from_when_it_was_opened(
    outbox: Outbox, jobs_dir: Path
) -> None:
    ran(outbox, jobs_dir, "legacy", finished_days_ago=0)
    with sqlite3.connect(outbox.path) as db:
        db.execute("UPDATE jobs SET finished_at = NULL, created_at = ?", (NOW - 9 * DAY_S,))
    assert pruner(outbox, jobs_dir).due() == ["legacy"]
