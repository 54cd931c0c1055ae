"""The outbox keeps every report until it is acknowledged, across reopening."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from training_agent.jobs import JobStatus
from training_agent.reporting.outbox import Outbox, skipped_notice


def test_logs_are_numbered_and_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    outbox.open_job("j1", "tok")
    outbox.append_logs("j1", ["a", "b"])
    outbox.append_logs("j1", ["c"])
    outbox.close()

    reopened = Outbox(path)
    batch = reopened.pending_logs("j1", limit=10)
    assert batch is not None
    assert (batch.offset, batch.lines) == (0, ["a", "b", "c"])
    reopened.ack_logs("j1", below=2)
    rest = reopened.pending_logs("j1", limit=10)
    assert rest is not None and (rest.offset, rest.lines) == (2, ["c"])
    reopened.append_logs("j1", ["d"])
    rest = reopened.pending_logs("j1", limit=10)
    assert rest is not None and (rest.offset, rest.lines) == (2, ["c", "d"])


def test_file_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    Outbox(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_metric_points_merge_by_step(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3")
    outbox.open_job("j1", "tok")
    outbox.append_metric("j1", {"step": 2, "epoch": 0.2, "train_loss": 1.0})
    outbox.append_metric("j1", {"step": 1, "epoch": 0.1, "train_loss": 1.5})
    outbox.append_metric("j1", {"step": 2, "epoch": 0.2, "eval_loss": 0.9})
    points = outbox.pending_metrics("j1", limit=10)
    assert points == [
        {"step": 1, "epoch": 0.1, "train_loss": 1.5},
        {"step": 2, "epoch": 0.2, "train_loss": 1.0, "eval_loss": 0.9},
    ]


def test_ack_keeps_a_point_merged_after_it_was_read(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3")
    outbox.open_job("j1", "tok")
    outbox.append_metric("j1", {"step": 1, "epoch": 0.1, "train_loss": 1.5})
    sent = outbox.pending_metrics("j1", limit=10)
    outbox.append_metric("j1", {"step": 1, "epoch": 0.1, "eval_loss": 1.2})
    outbox.ack_metrics("j1", sent)
    assert outbox.pending_metrics("j1", limit=10) == [
        {"step": 1, "epoch": 0.1, "train_loss": 1.5, "eval_loss": 1.2}
    ]


def test_statuses_in_order_and_finish_forgets_the_job(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3")
    outbox.open_job("j1", "tok")
    outbox.append_status("j1", JobStatus.RUNNING)
    outbox.append_logs("j1", ["x"])
    outbox.append_status("j1", JobStatus.FAILED, error="boom", details={"exit_code": 1})
    statuses = outbox.pending_statuses("j1")
    assert [s.status for s in statuses] == [JobStatus.RUNNING, JobStatus.FAILED]
    assert statuses[1].error == "boom" and statuses[1].details == {"exit_code": 1}
    assert outbox.has_data("j1")
    assert outbox.unfinished_jobs() == [("j1", "tok")]

    outbox.finish_job("j1")
    assert outbox.is_finished("j1")
    assert outbox.unfinished_jobs() == []
    assert not outbox.has_data("j1")
    assert outbox.pending_statuses("j1") == []


def all_pending_logs(outbox: Outbox, job_id: str) -> list[str]:
    batch = outbox.pending_logs(job_id, limit=1_000_000)
    assert batch is None or batch.offset == 0
    return [] if batch is None else batch.lines


def test_a_long_log_keeps_head_and_tail_with_one_notice(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_log_lines=10)  # head 5, tail 4, notice 1
    outbox.open_job("j1", "tok")
    for start in range(0, 100, 7):  # batches that straddle the head and the window
        outbox.append_logs("j1", [f"line {i}" for i in range(start, min(start + 7, 100))])
    assert all_pending_logs(outbox, "j1") == [f"line {i}" for i in range(5)]  # tail held
    assert not outbox.has_terminal_status("j1")

    outbox.append_status("j1", JobStatus.COMPLETED)

    lines = all_pending_logs(outbox, "j1")
    assert lines[:5] == [f"line {i}" for i in range(5)]
    assert lines[6:] == [f"line {i}" for i in range(96, 100)]
    assert lines[5] == skipped_notice(91, head=5, tail=4)
    assert "91 log lines skipped" in lines[5]
    assert len(lines) == 10
    assert outbox.has_terminal_status("j1")


def test_a_log_within_the_cap_is_kept_whole_and_in_order(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_log_lines=10)
    outbox.open_job("j1", "tok")
    outbox.append_logs("j1", [f"line {i}" for i in range(8)])
    outbox.append_logs("j1", ["line 8"])
    outbox.append_status("j1", JobStatus.FAILED, error="boom")
    assert all_pending_logs(outbox, "j1") == [f"line {i}" for i in range(9)]


def test_the_held_window_survives_a_restart_and_keeps_its_cap(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    outbox = Outbox(path, max_log_lines=10)
    outbox.open_job("j1", "tok")
    outbox.append_logs("j1", [f"line {i}" for i in range(20)])
    outbox.ack_logs("j1", below=5)  # the head was delivered
    outbox.close()

    reopened = Outbox(path, max_log_lines=None)  # a new setting affects new jobs only
    reopened.append_logs("j1", ["line 20"])
    reopened.append_status("j1", JobStatus.COMPLETED)
    batch = reopened.pending_logs("j1", limit=100)
    assert batch is not None and batch.offset == 5
    assert batch.lines == [skipped_notice(12, head=5, tail=4)] + [
        f"line {i}" for i in range(17, 21)
    ]


def test_an_unbounded_outbox_streams_every_line(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_log_lines=None)
    outbox.open_job("j1", "tok")
    outbox.append_logs("j1", [str(i) for i in range(500)])
    assert all_pending_logs(outbox, "j1") == [str(i) for i in range(500)]


def test_reports_to_a_finished_job_are_dropped(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_log_lines=10)
    outbox.open_job("j1", "tok")
    outbox.append_logs("j1", [str(i) for i in range(20)])
    outbox.finish_job("j1")  # e.g. the lease was lost
    outbox.append_logs("j1", ["late"])
    outbox.append_metric("j1", {"step": 1, "epoch": 0.1})
    outbox.append_status("j1", JobStatus.FAILED)
    assert not outbox.has_data("j1")
    assert outbox.pending_statuses("j1") == []
    assert outbox.unfinished_jobs() == []


def test_an_outbox_of_the_first_release_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE jobs (job_id TEXT PRIMARY KEY, job_token TEXT NOT NULL, "
            "next_line INTEGER NOT NULL DEFAULT 0, finished INTEGER NOT NULL DEFAULT 0, "
            "created_at REAL NOT NULL)"
        )
        db.execute("INSERT INTO jobs (job_id, job_token, created_at) VALUES ('old', 't', 1.0)")
    outbox = Outbox(path, max_log_lines=10)
    outbox.append_logs("old", [str(i) for i in range(30)])  # opened without a cap: all stream
    assert len(all_pending_logs(outbox, "old")) == 30
    outbox.close()


def test_a_cap_below_the_minimum_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least"):
        Outbox(tmp_path / "o.sqlite3", max_log_lines=3)
