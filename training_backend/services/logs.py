"""Log reports: lines stored once each, numbered in the job's log stream."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from training_backend.db.models import JobLog, TrainingJob
from training_backend.errors import ApiError

MAX_LINES_PER_REQUEST = 5_000
MAX_BYTES_PER_REQUEST = 1024 * 1024
MAX_LINE_CHARS = 16 * 1024


def clean_line(line: str) -> str:
    """``line`` as stored: NUL replaced (PostgreSQL text cannot hold it), absurd lengths cut."""
    line = line.replace("\x00", "\ufffd")
    if len(line) <= MAX_LINE_CHARS:
        return line
    return f"{line[:MAX_LINE_CHARS]} [truncated {len(line) - MAX_LINE_CHARS} characters]"


def check_request_size(lines: Sequence[str]) -> None:
    """413 ``PAYLOAD_TOO_LARGE`` for more lines or bytes than one request may carry."""
    if len(lines) > MAX_LINES_PER_REQUEST:
        message = f"Too many log lines in one request (at most {MAX_LINES_PER_REQUEST})"
        raise ApiError(413, "PAYLOAD_TOO_LARGE", message)
    if sum(len(line.encode("utf-8", "replace")) for line in lines) > MAX_BYTES_PER_REQUEST:
        message = f"Too much log text in one request (at most {MAX_BYTES_PER_REQUEST} bytes)"
        raise ApiError(413, "PAYLOAD_TOO_LARGE", message)


def _lock_stream(db: Session, *, job_id: str, now: datetime) -> int:
    # Writing first takes the job's row lock (PostgreSQL) or the write lock (SQLite), so
    # two appends to one job cannot both number their lines from the same count.
    stmt = (
        update(TrainingJob)
        .where(TrainingJob.id == job_id)
        .values(updated_at=now)
        .returning(TrainingJob.log_line_count)
        .execution_options(synchronize_session=False)
    )
    return int(db.execute(stmt).scalar_one())


def _gap(stored: int, offset: int) -> ApiError:
    message = f"Log offset {offset} leaves a gap: the server has {stored} lines, send from {stored}"
    return ApiError(409, "LOG_GAP", message, extra={"expected_offset": stored})


def append_logs(
    db: Session, *, job_id: str, lines: Sequence[str], offset: int | None, now: datetime
) -> tuple[int, int]:
    """Append ``lines``; returns (lines appended, lines stored in total).

    Without ``offset`` the lines go after the last stored one. With it, ``offset`` is the
    stream position of ``lines[0]``: lines already stored are skipped, so a retried
    request stores nothing twice, and an offset past the end is a 409 ``LOG_GAP``.
    """
    stored = _lock_stream(db, job_id=job_id, now=now)
    if offset is not None and offset > stored:
        db.rollback()
        raise _gap(stored, offset)
    fresh = lines if offset is None else lines[stored - offset :]
    rows = [
        {"job_id": job_id, "line_no": stored + i, "text": clean_line(line)}
        for i, line in enumerate(fresh)
    ]
    if rows:
        db.execute(insert(JobLog), rows)
        total = stored + len(rows)
        count = update(TrainingJob).where(TrainingJob.id == job_id).values(log_line_count=total)
        db.execute(count.execution_options(synchronize_session=False))
    db.commit()
    return len(rows), stored + len(rows)


def read_logs(db: Session, *, job_id: str, offset: int, limit: int) -> list[str]:
    """Lines ``offset`` to ``offset + limit`` of the job's log stream."""
    query = (
        select(JobLog.text)
        .where(JobLog.job_id == job_id, JobLog.line_no >= offset)
        .order_by(JobLog.line_no)
        .limit(limit)
    )
    return list(db.scalars(query))
