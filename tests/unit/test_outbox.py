"""The outbox keeps every report until it is acknowledged, across reopening."""

from __future__ import annotations

import stat
from pathlib import Path

from training_agent.jobs import JobStatus
from training_agent.reporting.outbox import Outbox


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
