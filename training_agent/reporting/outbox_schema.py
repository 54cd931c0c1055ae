"""The outbox's tables (``reporting.outbox``; the ``artifacts`` table is in
``reporting.artifact_rows``). ``CREATE … IF NOT EXISTS`` makes a new file; a column added
after the first release is in ``JOB_COLUMNS`` and added to an older file when it opens.
"""

from __future__ import annotations

SCHEMA = """
CREATE TABLE IF NOT EXISTS space_probe (at BLOB);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    job_token TEXT NOT NULL,
    next_line INTEGER NOT NULL DEFAULT 0,     -- offset of the next line appended
    finished INTEGER NOT NULL DEFAULT 0,      -- a terminal status was delivered or abandoned
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS held_logs (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,                     -- the line's number among all lines written
    text TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
CREATE TABLE IF NOT EXISTS logs (
    job_id TEXT NOT NULL,
    line_no INTEGER NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (job_id, line_no)
);
CREATE TABLE IF NOT EXISTS metrics (
    job_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    point TEXT NOT NULL,
    PRIMARY KEY (job_id, step)
);
CREATE TABLE IF NOT EXISTS statuses (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    details TEXT
);
"""


# Columns added to ``jobs`` after the first release, with their declarations.
JOB_COLUMNS = {
    "seen_lines": "INTEGER NOT NULL DEFAULT 0",  # lines written, kept or not
    "log_head": "INTEGER",  # lines streamed before holding back (NULL: no cap)
    "log_tail": "INTEGER",  # how many of the latest lines the held window keeps
    "finished_at": "REAL",  # when ``finished`` was set (NULL: before this column)
}
