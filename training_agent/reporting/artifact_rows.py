"""The outbox's ``artifacts`` table: each upload's state, so it survives a restart.

A row is written when a completed job's outputs are planned (``executor.outputs``),
before its terminal status; the uploader (``reporting.artifacts``) fills in the size,
SHA-256 and fingerprint after hashing, the server's ``artifact_id`` after declaring,
and ``offset`` after every chunk the server took. A row is *settled* once ``complete``
or ``failed``; a job's terminal status goes out only when all its rows are settled, and
then carries each artifact id (``outputs_detail``). ``offset`` is only a hint: every
upload session starts by declaring again, and the server answers its own offset.
"""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training_agent.executor.outputs import PlannedUpload
from training_agent.jobs import OutputKind

SCHEMA = """
CREATE TABLE IF NOT EXISTS artifacts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    output_index INTEGER NOT NULL,            -- position among the job's declared outputs
    path TEXT NOT NULL,                       -- resolved, inside the job's work dir
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    is_dir INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    size_bytes INTEGER,                       -- NULL until hashed
    sha256 TEXT,
    fingerprint TEXT,
    artifact_id TEXT,                         -- NULL until declared
    offset INTEGER NOT NULL DEFAULT 0,        -- bytes the server confirmed
    rereads INTEGER NOT NULL DEFAULT 0,       -- times re-read after it changed
    restarts INTEGER NOT NULL DEFAULT 0,      -- times started over after ARTIFACT_CORRUPT
    error TEXT
);
CREATE INDEX IF NOT EXISTS artifacts_by_job ON artifacts (job_id, seq);
"""


class ArtifactState(enum.StrEnum):
    """Where one upload stands."""

    PENDING = "pending"  # planned or under way
    COMPLETE = "complete"  # the server verified every byte
    FAILED = "failed"  # given up; the job log says why, the file stays local


@dataclass(frozen=True)
class ArtifactRow:
    """One planned upload and how far it got."""

    seq: int
    job_id: str
    output_index: int
    path: Path
    name: str
    kind: OutputKind
    is_dir: bool
    state: ArtifactState
    size_bytes: int | None
    sha256: str | None
    fingerprint: str | None
    artifact_id: str | None
    offset: int
    rereads: int
    restarts: int
    error: str | None


_COLUMNS = (
    "seq, job_id, output_index, path, name, kind, is_dir, state, size_bytes, sha256, "
    "fingerprint, artifact_id, offset, rereads, restarts, error"
)


def _row(values: Sequence[Any]) -> ArtifactRow:
    seq, job_id, index, path, name, kind, is_dir, state, *rest = values
    size, sha, fingerprint, artifact_id, offset, rereads, restarts, error = rest
    return ArtifactRow(
        seq,
        job_id,
        index,
        Path(path),
        name,
        OutputKind(kind),
        bool(is_dir),
        ArtifactState(state),
        size,
        sha,
        fingerprint,
        artifact_id,
        offset,
        rereads,
        restarts,
        error,
    )


class ArtifactRows:
    """The ``artifacts`` table of one outbox; every method is one short transaction."""

    def __init__(
        self,
        db: sqlite3.Connection,
        tx: Callable[[], AbstractContextManager[sqlite3.Connection]],
        append_notice: Callable[[sqlite3.Connection, str, str], None],
    ) -> None:
        self._db = db
        self._tx = tx
        self._append_notice = append_notice

    def add(self, job_id: str, uploads: Sequence[PlannedUpload]) -> None:
        """Plan ``uploads`` for the job (before its terminal status is stored)."""
        with self._tx() as db:
            db.executemany(
                "INSERT INTO artifacts (job_id, output_index, path, name, kind, is_dir) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (job_id, u.index, str(u.path), u.name, u.kind.value, int(u.is_dir))
                    for u in uploads
                ],
            )

    def pending(self) -> list[ArtifactRow]:
        """Every unsettled upload of an unfinished job, oldest first."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM artifacts WHERE state = 'pending' AND job_id IN "
            "(SELECT job_id FROM jobs WHERE finished = 0) ORDER BY seq"
        ).fetchall()
        return [_row(values) for values in rows]

    def get(self, seq: int) -> ArtifactRow | None:
        values = self._db.execute(
            f"SELECT {_COLUMNS} FROM artifacts WHERE seq = ?", (seq,)
        ).fetchone()
        return None if values is None else _row(values)

    def of_job(self, job_id: str) -> list[ArtifactRow]:
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM artifacts WHERE job_id = ? ORDER BY seq", (job_id,)
        ).fetchall()
        return [_row(values) for values in rows]

    def unsettled(self, job_id: str) -> bool:
        """Whether an upload of the job is still under way (its terminal status waits)."""
        row = self._db.execute(
            "SELECT 1 FROM artifacts WHERE job_id = ? AND state = 'pending' LIMIT 1", (job_id,)
        ).fetchone()
        return row is not None

    def hashed(self, seq: int, *, size_bytes: int, sha256: str, fingerprint: str) -> bool:
        """The output was read whole: what the server must receive. Forgets any earlier
        declaration (new content is a new artifact). False when the row is gone."""
        return self._update(
            seq,
            "size_bytes = ?, sha256 = ?, fingerprint = ?, artifact_id = NULL, offset = 0",
            (size_bytes, sha256, fingerprint),
        )

    def declared(self, seq: int, *, artifact_id: str, offset: int) -> bool:
        return self._update(seq, "artifact_id = ?, offset = ?", (artifact_id, offset))

    def advanced(self, seq: int, *, offset: int) -> bool:
        """The server holds the first ``offset`` bytes; False when the row is gone."""
        return self._update(seq, "offset = ?", (offset,))

    def reread(self, seq: int) -> bool:
        """The output changed: hash it again (counted; ``rereads`` caps it)."""
        return self._update(
            seq, "rereads = rereads + 1, sha256 = NULL, artifact_id = NULL, offset = 0", ()
        )

    def restart(self, seq: int) -> bool:
        """The server found it corrupt: declare and send it again from the start."""
        return self._update(seq, "restarts = restarts + 1, artifact_id = NULL, offset = 0", ())

    def complete(self, seq: int) -> bool:
        return self._update(seq, "state = 'complete', offset = size_bytes", ())

    def fail(self, seq: int, *, error: str, notice: str) -> bool:
        """Give the upload up: ``error`` for the terminal status, ``notice`` a job log line
        (stored in the same transaction, never held back by the log cap)."""
        with self._tx() as db:
            row = db.execute(
                "SELECT job_id FROM artifacts WHERE seq = ? AND state = 'pending'", (seq,)
            ).fetchone()
            if row is None:
                return False
            db.execute(
                "UPDATE artifacts SET state = 'failed', error = ? WHERE seq = ?", (error, seq)
            )
            self._append_notice(db, str(row[0]), notice)
            return True

    def outputs_detail(self, job_id: str, outputs: list[Any]) -> list[Any]:
        """The terminal status's ``outputs`` with each upload's ``artifact_id`` (or its
        ``upload_error``) put next to the output it came from."""
        merged = [dict(item) if isinstance(item, dict) else item for item in outputs]
        for row in self.of_job(job_id):
            if 0 <= row.output_index < len(merged) and isinstance(merged[row.output_index], dict):
                item = merged[row.output_index]
                item["name"] = row.name
                if row.state is ArtifactState.COMPLETE:
                    item["artifact_id"] = row.artifact_id
                elif row.error:
                    item["upload_error"] = row.error
        return merged

    def _update(self, seq: int, assignments: str, values: tuple[Any, ...]) -> bool:
        with self._tx() as db:
            cursor = db.execute(
                f"UPDATE artifacts SET {assignments} WHERE seq = ? AND state = 'pending'",
                (*values, seq),
            )
            return cursor.rowcount > 0
