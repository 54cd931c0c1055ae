"""The ``JobSink`` a running job writes to: every call lands in the outbox first."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from training_agent.errors import StateError
from training_agent.jobs import JobStatus
from training_agent.reporting.outbox import Outbox

log = logging.getLogger(__name__)


class OutboxSink:
    """Writes one job's reports to the outbox and wakes the uploader.

    Never raises: a job must not die because its report could not be stored. A failed
    write is logged once per kind of report.
    """

    def __init__(self, outbox: Outbox, job_id: str, *, wake: Callable[[], None]) -> None:
        self._outbox = outbox
        self._job_id = job_id
        self._wake = wake
        self._failed: set[str] = set()

    def log(self, line: str) -> None:
        self._store("log", self._outbox.append_logs, self._job_id, [line])

    def metric(self, point: dict[str, Any]) -> None:
        self._store("metric", self._outbox.append_metric, self._job_id, point)

    def progress(self, *, total_steps: int | None, total_epochs: float | None) -> None:
        details = {"total_steps": total_steps, "total_epochs": total_epochs}
        details = {key: value for key, value in details.items() if value is not None}
        if details:
            self.status(JobStatus.RUNNING, details=details)

    def status(
        self, status: JobStatus, *, error: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        self._store(
            "status", self._outbox.append_status, self._job_id, status, error=error, details=details
        )

    def _store(self, kind: str, write: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        try:
            write(*args, **kwargs)
        except StateError as exc:
            if kind not in self._failed:
                self._failed.add(kind)
                log.error("job %s: cannot store a %s report: %s", self._job_id, kind, exc)
            return
        self._wake()
