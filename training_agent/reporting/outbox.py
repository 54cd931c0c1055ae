"""The durable outbox: every report is written here before any upload.

One SQLite file in the state dir. A job's reports live in three tables until the
uploader has delivered them:

- ``logs``: one row per line, numbered from 0 per job (the line number is the offset
  sent to backends that offer ``log_offsets``, so a retried batch never duplicates);
- ``metrics``: one row per (job, step); a later point for the same step merges into it;
- ``statuses``: status changes in the order they happened;
- ``artifacts``: each output upload and how far it got (``reporting.artifact_rows``).

``jobs`` holds each job's token (the file is owner-only) and how far its logs were
delivered, so an agent restart resumes where it stopped; a finished job's row (its token
blanked) stays until ``pruning`` forgets it after the retention (``finished_jobs``).

A job's log is bounded (``max_log_lines``): its first half streams as it is written;
past it, lines wait in ``held_logs``, a window of the latest lines, and go out when the
job's terminal status is stored, behind one notice saying how many were skipped. So a
job that prints a million lines costs at most ``max_log_lines`` + 1 lines, and keeps
how it started and how it ended. The price: past the first half, the live log on the
platform waits until the job ends (rejected: streaming the tail as it comes, which
would make the kept lines depend on when a job ends, not on the cap). A write refused
for a full disk sets ``full`` until a write goes through (``has_room`` tries one).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training_agent.errors import StateError
from training_agent.jobs import JobStatus
from training_agent.paths import narrow
from training_agent.reporting import artifact_rows, outbox_schema
from training_agent.reporting.finished_jobs import WAITING_TABLES, FinishedJobs

_SQLITE_FULL = 13  # "database or disk is full"
DISK_FULL = (
    "the agent's disk is full: reports cannot be stored in {directory}; the running job's "
    "output waits in memory and no new job is taken until space is freed there"
)
DEFAULT_MAX_LOG_LINES = 100_000
MIN_MAX_LOG_LINES = 10


def skipped_notice(skipped: int, *, head: int, tail: int) -> str:
    """The one job log line that stands where the middle of an over-long log was."""
    return (
        f"[training-agent] {skipped} log lines skipped here: the log is longer than "
        f"max_log_lines_per_job ({head + tail + 1}), so only its first {head} and last "
        f"{tail} lines are kept"
    )


@dataclass(frozen=True)
class PendingStatus:
    """A status change not yet delivered."""

    seq: int
    status: JobStatus
    error: str | None
    details: dict[str, Any]


@dataclass(frozen=True)
class PendingLogs:
    """Consecutive undelivered lines of one job, starting at ``offset``."""

    offset: int
    lines: list[str]


class Outbox:
    """Append-before-upload store; every method is one short transaction."""

    def __init__(self, path: Path, *, max_log_lines: int | None = DEFAULT_MAX_LOG_LINES) -> None:
        """Open (or create) the outbox at ``path``.

        ``max_log_lines`` bounds each job opened from now on (None: unbounded); a job
        keeps the bound it was opened with, across restarts.
        """
        if max_log_lines is not None and max_log_lines < MIN_MAX_LOG_LINES:
            raise ValueError(f"max_log_lines must be at least {MIN_MAX_LOG_LINES}")
        self.path = path
        self._max_log_lines = max_log_lines
        self.full: str | None = None  # the sentence while the disk is full
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # owner-only: holds job tokens
            os.close(fd)
            for file in (
                path,
                path.with_name(f"{path.name}-wal"),
                path.with_name(f"{path.name}-shm"),
            ):
                narrow(file, 0o600)  # an older version's, left wider
            # isolation_level=None: transactions are explicit (see _tx).
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a process crash; only power loss can drop the
            # last commits, and those are re-sent as the job's logs are re-read anyway.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(outbox_schema.SCHEMA + artifact_rows.SCHEMA)
            self._add_missing_columns()
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot open the outbox {path}: {exc}") from exc
        self.artifacts = artifact_rows.ArtifactRows(self._db, self._tx, _append_notice)
        self.finished = FinishedJobs(self._db, self._tx)

    def close(self) -> None:
        self._db.close()

    def _add_missing_columns(self) -> None:
        have = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for name, declaration in outbox_schema.JOB_COLUMNS.items():
            if name not in have:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {declaration}")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            before = self._db.total_changes
            try:
                yield self._db
                wrote = self._db.total_changes != before
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite rolls back itself on a full disk
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            full = DISK_FULL.format(directory=self.path.parent) if _is_full(exc) else None
            self.full = full or self.full
            raise StateError(f"{full or 'the outbox failed'} ({self.path}: {exc})") from exc
        if wrote and self.full is not None:
            self.full = None  # a write went through: there is room again

    def has_room(self) -> bool:
        """Whether the outbox can store reports: after a write failed for a full disk, a
        write of 64 KiB (rolled back by its delete) tells whether space is back."""
        if self.full is None:
            return True
        with suppress(StateError), self._tx() as db:
            db.execute("INSERT INTO space_probe (at) VALUES (?)", (bytes(65536),))
            db.execute("DELETE FROM space_probe")
        return self.full is None

    # -- writing (the job side) ---------------------------------------------------------

    def open_job(self, job_id: str, job_token: str) -> None:
        head = tail = None
        if self._max_log_lines is not None:
            head = self._max_log_lines // 2
            tail = self._max_log_lines - head - 1  # one line for the notice
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO jobs (job_id, job_token, created_at, log_head, log_tail) "
                "VALUES (?, ?, ?, ?, ?)",
                (job_id, job_token, time.time(), head, tail),
            )

    def append_logs(self, job_id: str, lines: list[str]) -> None:
        """Store log lines; past the job's head they wait in the held window.

        Lines of a job that is finished (or unknown) are dropped: nothing would send them.
        """
        if not lines:
            return
        with self._tx() as db:
            row = db.execute(
                "SELECT next_line, seen_lines, log_head, log_tail FROM jobs "
                "WHERE job_id = ? AND finished = 0",
                (job_id,),
            ).fetchone()
            if row is None:
                return
            start, seen, head, tail = row
            streamed = len(lines) if head is None else max(0, min(len(lines), head - seen))
            db.executemany(
                "INSERT INTO logs (job_id, line_no, text) VALUES (?, ?, ?)",
                [(job_id, start + i, line) for i, line in enumerate(lines[:streamed])],
            )
            held = lines[streamed:][-tail:] if tail else []
            first_held = seen + len(lines) - len(held)
            db.executemany(
                "INSERT INTO held_logs (job_id, seq, text) VALUES (?, ?, ?)",
                [(job_id, first_held + i, line) for i, line in enumerate(held)],
            )
            seen += len(lines)
            if held:
                db.execute(
                    "DELETE FROM held_logs WHERE job_id = ? AND seq < ?", (job_id, seen - tail)
                )
            db.execute(
                "UPDATE jobs SET next_line = ?, seen_lines = ? WHERE job_id = ?",
                (start + streamed, seen, job_id),
            )

    def _release_held(self, db: sqlite3.Connection, job_id: str) -> None:
        """Move the held window behind the streamed head, after a notice if lines fell out."""
        row = db.execute(
            "SELECT next_line, log_head, log_tail FROM jobs WHERE job_id = ?", (job_id,)
        ).fetchone()
        held = db.execute(
            "SELECT seq, text FROM held_logs WHERE job_id = ? ORDER BY seq", (job_id,)
        ).fetchall()
        if row is None or not held:
            return
        start, head, tail = row
        skipped = int(held[0][0]) - head
        lines = [str(text) for _, text in held]
        if skipped > 0:
            lines.insert(0, skipped_notice(skipped, head=head, tail=tail))
        db.executemany(
            "INSERT INTO logs (job_id, line_no, text) VALUES (?, ?, ?)",
            [(job_id, start + i, line) for i, line in enumerate(lines)],
        )
        db.execute("UPDATE jobs SET next_line = ? WHERE job_id = ?", (start + len(lines), job_id))
        db.execute("DELETE FROM held_logs WHERE job_id = ?", (job_id,))

    def append_metric(self, job_id: str, point: Mapping[str, Any]) -> None:
        step = int(point["step"])
        with self._tx() as db:
            if not _is_open(db, job_id):
                return
            row = db.execute(
                "SELECT point FROM metrics WHERE job_id = ? AND step = ?", (job_id, step)
            ).fetchone()
            merged = {**json.loads(row[0]), **point} if row else dict(point)
            db.execute(
                "INSERT OR REPLACE INTO metrics (job_id, step, point) VALUES (?, ?, ?)",
                (job_id, step, json.dumps(merged)),
            )

    def append_status(
        self,
        job_id: str,
        status: JobStatus,
        *,
        error: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Store a status change; a terminal one first releases the held end of the log."""
        with self._tx() as db:
            if not _is_open(db, job_id):
                return
            if status.is_terminal:
                self._release_held(db, job_id)
            db.execute(
                "INSERT INTO statuses (job_id, status, error, details) VALUES (?, ?, ?, ?)",
                (job_id, status.value, error, json.dumps(dict(details or {}))),
            )

    # -- reading and acknowledging (the uploader side) ----------------------------------

    def unfinished_jobs(self) -> list[tuple[str, str]]:
        """(job_id, job_token) of every job with something left to deliver."""
        rows = self._db.execute(
            "SELECT job_id, job_token FROM jobs WHERE finished = 0 ORDER BY created_at"
        ).fetchall()
        return [(str(job_id), str(token)) for job_id, token in rows]

    def pending_logs(self, job_id: str, *, limit: int) -> PendingLogs | None:
        rows = self._db.execute(
            "SELECT line_no, text FROM logs WHERE job_id = ? ORDER BY line_no LIMIT ?",
            (job_id, limit),
        ).fetchall()
        if not rows:
            return None
        return PendingLogs(offset=int(rows[0][0]), lines=[str(text) for _, text in rows])

    def ack_logs(self, job_id: str, *, below: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM logs WHERE job_id = ? AND line_no < ?", (job_id, below))

    def pending_metrics(self, job_id: str, *, limit: int) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT point FROM metrics WHERE job_id = ? ORDER BY step LIMIT ?", (job_id, limit)
        ).fetchall()
        return [json.loads(point) for (point,) in rows]

    def ack_metrics(self, job_id: str, points: list[dict[str, Any]]) -> None:
        # Only the exact points that were sent: a step merged meanwhile stays pending.
        with self._tx() as db:
            db.executemany(
                "DELETE FROM metrics WHERE job_id = ? AND step = ? AND point = ?",
                [(job_id, int(p["step"]), json.dumps(p)) for p in points],
            )

    def pending_statuses(self, job_id: str) -> list[PendingStatus]:
        rows = self._db.execute(
            "SELECT seq, status, error, details FROM statuses WHERE job_id = ? ORDER BY seq",
            (job_id,),
        ).fetchall()
        return [
            PendingStatus(
                seq=seq, status=JobStatus(status), error=error, details=json.loads(details)
            )
            for seq, status, error, details in rows
        ]

    def ack_status(self, seq: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM statuses WHERE seq = ?", (seq,))

    def finish_job(self, job_id: str) -> None:
        """The job's terminal status was delivered (or abandoned): forget what is left."""
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET finished = 1, job_token = '', finished_at = ? WHERE job_id = ?",
                (time.time(), job_id),
            )
            for table in WAITING_TABLES:
                db.execute(f"DELETE FROM {table} WHERE job_id = ?", (job_id,))

    def is_finished(self, job_id: str) -> bool:
        row = self._db.execute("SELECT finished FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return bool(row and row[0])

    def has_terminal_status(self, job_id: str) -> bool:
        """Whether the job's end is already stored (pending or delivered)."""
        if self.is_finished(job_id):
            return True
        return any(status.status.is_terminal for status in self.pending_statuses(job_id))

    def has_job(self, job_id: str) -> bool:
        """Whether the job was ever opened here (its token is or was stored)."""
        row = self._db.execute("SELECT 1 FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return row is not None

    def has_data(self, job_id: str) -> bool:
        """Whether log lines or metric points of the job still wait for delivery."""
        return any(
            self._db.execute(
                f"SELECT 1 FROM {table} WHERE job_id = ? LIMIT 1", (job_id,)
            ).fetchone()
            for table in ("logs", "metrics")
        )


def _append_notice(db: sqlite3.Connection, job_id: str, line: str) -> None:
    """Add one agent line to a job's streamed log, past any cap (inside a transaction)."""
    row = db.execute(
        "SELECT next_line FROM jobs WHERE job_id = ? AND finished = 0", (job_id,)
    ).fetchone()
    if row is None:
        return
    db.execute("INSERT INTO logs (job_id, line_no, text) VALUES (?, ?, ?)", (job_id, row[0], line))
    db.execute("UPDATE jobs SET next_line = next_line + 1 WHERE job_id = ?", (job_id,))


def _is_full(exc: sqlite3.Error) -> bool:
    code = int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
    return code == _SQLITE_FULL or "disk is full" in str(exc)


def _is_open(db: sqlite3.Connection, job_id: str) -> bool:
    """Whether ``job_id`` was opened and not finished: reports to it can still go out."""
    row = db.execute("SELECT finished FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    return row is not None and not row[0]
