"""Removing finished jobs from the machine: their work dirs and outbox rows.

Every job leaves a work dir (``jobs/<id>/``: its config, its events, and on a real job
its checkpoints and outputs) and a row in the outbox's ``jobs`` table. Both are removed
once all of these hold:

- every report and artifact upload of the job was delivered, or given up because the
  backend no longer takes them: its outbox row is finished and nothing of it waits;
- it finished more than ``job_retention_days`` ago (the owner's setting);
- it does not run here (``in_use``): a job the backend gave up on may still be stopping.

The pruner runs at start (after the crash recovery), after each job's last report went
out, and hourly. A work dir goes first and the row only after it, so a dir that cannot be
removed is tried again at the next pass; that is one WARNING line per job and run, never
a crash. A work dir with no outbox row (an agent older than the outbox) is left alone.

Why 7 days by default: a week is long enough to look into a failed job's checkpoints and
logs on the machine, or to fetch an output that was not uploaded (``upload_artifacts``
off, or larger than ``max_artifact_gb``), and short enough that a busy machine holds a
week of jobs rather than all of them. ``min_free_disk_gb`` still stops claiming when the
disk runs low inside that week. 0 removes a job as soon as its reports are delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from training_agent.errors import StateError
from training_agent.executor.workspace import is_safe_job_id
from training_agent.reporting.outbox import Outbox

log = logging.getLogger(__name__)

DAY_S = 86_400.0
DEFAULT_RETENTION_DAYS = 7.0
# Between jobs nothing else makes one due, but time passes: an idle agent prunes hourly.
PRUNE_EVERY_S = 3600.0


class JobPruner:
    """Removes finished jobs older than the retention; ``run`` loops, ``prune_once`` is
    one pass."""

    def __init__(
        self,
        *,
        outbox: Outbox,
        jobs_dir: Path,
        retention_days: float = DEFAULT_RETENTION_DAYS,
        in_use: Callable[[str], bool] = lambda _job_id: False,
        clock: Callable[[], float] = time.time,
        remove: Callable[[Path], None] = shutil.rmtree,
    ) -> None:
        """``in_use(job_id)`` says the job runs here (``Daemon.holds``); ``clock`` is
        wall-clock time (the outbox's ``finished_at`` is)."""
        self._outbox = outbox
        self._jobs_dir = jobs_dir
        self._retention_s = retention_days * DAY_S
        self._in_use = in_use
        self._clock = clock
        self._remove = remove
        self._wake = asyncio.Event()
        self._warned: set[str] = set()  # work dirs that could not be removed, said once

    def wake(self) -> None:
        """Prune now (a job's last report went out)."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            await self.prune_once()
            # Not wait_for: on 3.11 it can swallow a cancel that comes as the wake does.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PRUNE_EVERY_S):
                    await self._wake.wait()

    def due(self) -> list[str]:
        """Ids of the jobs to remove now, oldest first."""
        cutoff = self._clock() - self._retention_s
        done = self._outbox.finished.finished_before(cutoff)
        return [job_id for job_id in done if not self._in_use(job_id)]

    async def prune_once(self) -> list[str]:
        """Remove every job ``due`` says; the ids removed."""
        removed: list[str] = []
        for job_id in self.due():
            if not await asyncio.to_thread(self._remove_dir, job_id):
                continue
            try:
                self._outbox.finished.forget(job_id)
            except StateError as exc:  # a full disk: the row goes at a later pass
                log.warning("job %s: cannot forget it in the outbox now: %s", job_id, exc)
                break
            removed.append(job_id)
        if removed:
            log.info(
                "removed %d finished job(s) older than the retention (%g days): %s",
                len(removed),
                self._retention_s / DAY_S,
                ", ".join(removed),
            )
        return removed

    def _remove_dir(self, job_id: str) -> bool:
        """Remove the job's work dir; True when it is gone (or never was)."""
        if not is_safe_job_id(job_id):
            return True  # no work dir was ever made for such an id
        path = self._jobs_dir / job_id
        try:
            if path.is_symlink() or path.is_file():
                path.unlink()  # not a work dir the agent made: never follow it
            elif path.exists():
                self._remove(path)
        except OSError as exc:
            if job_id not in self._warned:
                self._warned.add(job_id)
                log.warning(
                    "job %s: cannot remove its work folder %s (%s); remove it by hand or "
                    "fix its permissions, the agent tries again after the next job",
                    job_id,
                    path,
                    exc.strerror or exc,
                )
            return False
        return True
