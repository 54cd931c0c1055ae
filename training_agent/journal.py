"""Per-job journals: what a crashed agent left running, so the next start can clean up.

Each job the agent runs has ``<state_dir>/jobs/<job_id>/journal.json`` (mode 0600,
replaced atomically, so it is always a whole old or a whole new file)::

    {"job_id": "...", "pid": 4242, "tracking_id": "9f0c...", "started_at": 1767225600.0,
     "status": "running"}

``status`` is a ``JournalStatus``: ``starting`` (claimed, trainer not yet started),
``running`` (``pid`` and ``tracking_id`` known), or how the job ended; the file is
removed once the backend has the job's last report.

After a crash, SIGKILL or power loss, ``recover_jobs`` runs before the agent claims
anything: for every journal of a job that did not end, it kills what is left of the
job (every process carrying its tracking id; its output pipes died with the agent, so
it cannot be watched again), reports the job ``failed`` with ``AGENT_RESTARTED``
through the outbox (which still holds the job token), and removes the journal. The
outbox makes that report durable, and a job whose end is already in the outbox is not
reported again, so a crash during recovery never reports twice.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from training_agent.errors import StateError
from training_agent.executor.process import kill_tracked
from training_agent.executor.workspace import is_safe_job_id
from training_agent.jobs import JobStatus
from training_agent.paths import private_dir
from training_agent.reporting.outbox import Outbox

log = logging.getLogger(__name__)

JOURNAL_NAME = "journal.json"
AGENT_RESTARTED = "agent restarted during the job"


class JournalStatus(enum.StrEnum):
    """Where a job stands in its journal (the file's ``status``)."""

    STARTING = "starting"  # claimed; the trainer is not started yet
    RUNNING = "running"  # the trainer runs: pid and tracking_id are known
    COMPLETED = "completed"  # ended: its end is in the outbox
    FAILED = "failed"  # ended: its end is in the outbox
    CANCELLED = "cancelled"  # ended: its end is in the outbox
    LOST = "lost"  # ended: the backend gave the job up, nothing more is reported

    @property
    def ended(self) -> bool:
        return self not in (JournalStatus.STARTING, JournalStatus.RUNNING)


@dataclass(frozen=True)
class JournalEntry:
    """One journal's content."""

    job_id: str
    pid: int | None
    tracking_id: str | None
    started_at: float
    status: JournalStatus

    @property
    def ended(self) -> bool:
        return self.status.ended


class JobJournal:
    """The journal of one job; every method writes the whole file atomically."""

    def __init__(self, journals_dir: Path, job_id: str) -> None:
        if not is_safe_job_id(job_id):
            raise StateError(f"job id {job_id!r} cannot be used as a directory name")
        self.path = journals_dir / job_id / JOURNAL_NAME
        self._entry = JournalEntry(job_id, None, None, time.time(), JournalStatus.STARTING)

    def start(self) -> None:
        """The job was claimed: write the journal before anything runs."""
        self._write(self._entry)

    def started(self, pid: int, tracking_id: str) -> None:
        """The trainer runs as ``pid``, its processes carry ``tracking_id``."""
        self._entry = JournalEntry(
            self._entry.job_id, pid, tracking_id, self._entry.started_at, JournalStatus.RUNNING
        )
        self._write(self._entry)

    def finish(self, status: JournalStatus) -> None:
        """The job ended with ``status``; its end is in the outbox."""
        entry = self._entry
        self._entry = JournalEntry(
            entry.job_id, entry.pid, entry.tracking_id, entry.started_at, status
        )
        self._write(self._entry)

    def remove(self) -> None:
        remove_journal(self.path)

    def _write(self, entry: JournalEntry) -> None:
        try:
            write_atomically(self.path, json.dumps(asdict(entry)) + "\n")
        except OSError as exc:
            # A job must not fail because its journal could not be written; only the
            # clean-up after a crash would miss it.
            log.error("job %s: cannot write its journal %s: %s", entry.job_id, self.path, exc)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (mode 0600) so that a crash leaves the old or the new file."""
    private_dir(path.parent)  # and state/jobs above it: 0700 too, not the umask's 0755
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, path)


def remove_journal(path: Path) -> None:
    """Remove a journal and its job's directory when nothing else is in it."""
    try:
        path.unlink(missing_ok=True)
        path.parent.rmdir()
    except OSError:
        pass  # the directory holds something else, or is gone already


def load_journals(journals_dir: Path) -> list[tuple[Path, JournalEntry | None]]:
    """Every journal under ``journals_dir``; None for one that cannot be read."""
    found: list[tuple[Path, JournalEntry | None]] = []
    for path in sorted(journals_dir.glob(f"*/{JOURNAL_NAME}")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            entry = JournalEntry(
                job_id=str(data["job_id"]),
                pid=data.get("pid"),
                tracking_id=data.get("tracking_id"),
                started_at=float(data.get("started_at") or 0.0),
                status=JournalStatus(data["status"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("cannot read the job journal %s, removing it: %s", path, exc)
            entry = None
        found.append((path, entry))
    return found


def recover_jobs(journals_dir: Path, outbox: Outbox) -> list[str]:
    """Clean up after a crash (see the module docstring); the ids of jobs reported failed."""
    reported: list[str] = []
    for path, entry in load_journals(journals_dir):
        if entry is not None and not entry.ended and _recover(entry, outbox):
            reported.append(entry.job_id)
        remove_journal(path)
    return reported


def _recover(entry: JournalEntry, outbox: Outbox) -> bool:
    """Kill the job's leftovers and report it failed unless its end is known already."""
    killed = kill_tracked(entry.tracking_id) if entry.tracking_id else []
    if killed:
        log.warning(
            "job %s: killed %d leftover process(es) of the job (pids %s)",
            entry.job_id,
            len(killed),
            ", ".join(map(str, killed)),
        )
    if not outbox.has_job(entry.job_id):
        log.warning("job %s: the agent stopped before it could report the job", entry.job_id)
        return False
    if outbox.has_terminal_status(entry.job_id):
        return False
    outbox.append_status(entry.job_id, JobStatus.FAILED, error=AGENT_RESTARTED)
    log.warning("job %s: the agent restarted during the job; reporting it failed", entry.job_id)
    return True
