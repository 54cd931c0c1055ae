"""Whether the disks leave room for a new job: the work directory's free space
(``min_free_disk_gb``) and the outbox's (a write refused for a full disk).

While either is short the daemon claims nothing; each change is logged once, and the
outbox's is shown among ``status``'s problems until space is back.
"""

from __future__ import annotations

import logging
from pathlib import Path

from training_agent.gpus import GIB
from training_agent.reporting.outbox import Outbox
from training_agent.reporting.sink import OUTBOX
from training_agent.resources import free_disk_bytes
from training_agent.status.state import AgentState

log = logging.getLogger("training_agent.daemon")


class DiskRoom:
    """The two disk checks before a claim."""

    def __init__(
        self, jobs_dir: Path, min_free_disk_gb: float, outbox: Outbox, state: AgentState
    ) -> None:
        self._jobs_dir = jobs_dir
        self._min_free_gb = min_free_disk_gb
        self._outbox = outbox
        self._state = state
        self._low = False

    def ok(self) -> bool:
        """True when a new job may be claimed (both checks run, so both are logged)."""
        work = self._work_dir_ok()
        return self._outbox_ok() and work

    def _work_dir_ok(self) -> bool:
        minimum = self._min_free_gb
        free = free_disk_bytes(self._jobs_dir) if minimum > 0 else None
        low = free is not None and free < minimum * GIB
        if low and not self._low:
            log.warning(
                "only %.1f GB free in %s, below min_free_disk_gb = %g: taking no jobs "
                "until space is freed",
                (free or 0) / GIB,
                self._jobs_dir,
                minimum,
            )
        elif self._low and not low:
            log.info("free disk space is back above min_free_disk_gb; taking jobs again")
        self._low = low
        return not low

    def _outbox_ok(self) -> bool:
        was_full = self._outbox.full
        if self._outbox.has_room():
            if was_full is not None:
                log.info("the outbox can store reports again; taking jobs again")
                self._state.set_problem(OUTBOX, None)
            return True
        if was_full is None:
            log.error("%s", self._outbox.full)
        self._state.set_problem(OUTBOX, self._outbox.full)
        return False
