"""The outbox's finished jobs: which are old enough to forget, and forgetting one.

A job's row in ``jobs`` stays after its last report was delivered (``finished`` = 1,
its token blanked, ``finished_at`` set), so a backend offering it again can be told
apart from new work while it matters. ``pruning`` removes the rows (and the work dirs)
of jobs finished longer ago than the retention; this module only answers from the
outbox and deletes rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager

# Tables whose rows wait for delivery: a job with any row in them is never forgotten,
# whatever ``finished`` says.
WAITING_TABLES = ("logs", "held_logs", "metrics", "statuses", "artifacts")
_NOTHING_WAITS = " AND ".join(
    f"NOT EXISTS (SELECT 1 FROM {table} WHERE {table}.job_id = jobs.job_id)"
    for table in WAITING_TABLES
)


class FinishedJobs:
    """Read and delete finished rows of the outbox's ``jobs`` table."""

    def __init__(
        self,
        db: sqlite3.Connection,
        tx: Callable[[], AbstractContextManager[sqlite3.Connection]],
    ) -> None:
        self._db = db
        self._tx = tx

    def finished_before(self, cutoff: float) -> list[str]:
        """Ids of the jobs whose every report is delivered (or given up) and which
        finished before ``cutoff`` (seconds since the epoch), oldest first. A row from
        before ``finished_at`` existed counts from when the job was opened."""
        rows = self._db.execute(
            "SELECT job_id FROM jobs WHERE finished = 1 "
            f"AND COALESCE(finished_at, created_at) < ? AND {_NOTHING_WAITS} "
            "ORDER BY COALESCE(finished_at, created_at)",
            (cutoff,),
        ).fetchall()
        return [str(job_id) for (job_id,) in rows]

    def forget(self, job_id: str) -> None:
        """Delete a finished job's row; an unfinished one is left alone."""
        with self._tx() as db:
            db.execute("DELETE FROM jobs WHERE job_id = ? AND finished = 1", (job_id,))
