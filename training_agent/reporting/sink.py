"""``JobReports``: the one sink of a running job, feeding the outbox and the agent state.

Everything a job reports goes through it once and lands in both places: the outbox
(durable, for the backend; the uploader delivers it) and the ``AgentState`` (for
``status``, the dashboard and the status API). The runner writes log lines, metric
points and progress; the job's slot writes its status changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from training_agent.errors import StateError
from training_agent.jobs import JobOutcome, JobStatus
from training_agent.reporting.outbox import Outbox
from training_agent.status.state import AgentState, JobViewStatus

log = logging.getLogger(__name__)


class JobReports:
    """One job's reports, to the outbox (waking the uploader) and to the agent state.

    Never raises for the outbox: a job must not die because its report could not be
    stored. A failed write is logged once per kind of report.
    """

    def __init__(
        self, outbox: Outbox, state: AgentState, job_id: str, *, wake: Callable[[], None]
    ) -> None:
        self._outbox = outbox
        self._state = state
        self._job_id = job_id
        self._wake = wake
        self._failed: set[str] = set()

    # -- JobSink: what the trainer reports ----------------------------------------------

    def log(self, line: str) -> None:
        self._store("log", self._outbox.append_logs, self._job_id, [line])
        self._state.job_log(self._job_id, line)

    def metric(self, point: dict[str, Any]) -> None:
        self._store("metric", self._outbox.append_metric, self._job_id, point)
        self._state.job_metric(self._job_id, point)

    def progress(self, *, total_steps: int | None, total_epochs: float | None) -> None:
        details = {"total_steps": total_steps, "total_epochs": total_epochs}
        details = {key: value for key, value in details.items() if value is not None}
        if details:
            self._send_status(JobStatus.RUNNING, details=details)
        self._state.job_progress(self._job_id, total_steps=total_steps, total_epochs=total_epochs)

    # -- the job's status ---------------------------------------------------------------

    def started(self, *, model_name: str | None) -> None:
        """The job was claimed and starts: ``running`` here and on the platform."""
        self._state.job_started(self._job_id, model_name=model_name)
        self._send_status(JobStatus.RUNNING)

    def status(self, status: JobStatus) -> None:
        """The trainer paused (``paused``) or went on (``running``)."""
        self._send_status(status)
        self._state.job_status(self._job_id, JobViewStatus(status))

    def cancelling(self, reason: str) -> None:
        """The kill ladder is under way; only this agent shows it (the platform sees the end)."""
        self._state.job_status(self._job_id, JobViewStatus.CANCELLING, reason=reason)

    def abandon(self) -> None:
        """The backend gave the job up: nothing more of it goes out, not even what waits."""
        self._outbox.finish_job(self._job_id)

    def ended(self, outcome: JobOutcome, *, outputs: list[Any] | None = None) -> None:
        """The job ended: its terminal status goes out (after everything before it).

        ``outputs`` replaces the outcome's list of paths (the ``artifacts`` shape: an
        object per declared output, which the uploader completes with artifact ids).
        """
        details = _details(outcome)
        if outputs is not None:
            details["outputs"] = outputs
        self._send_status(outcome.status, error=outcome.reason, details=details)
        self._state.job_finished(
            self._job_id, status=JobViewStatus(outcome.status), error=outcome.reason
        )

    def lost(self, reason: str) -> None:
        """The job ended after the backend gave it up: ``failed`` here, nothing sent."""
        self.abandon()
        self._state.job_finished(self._job_id, status=JobViewStatus.FAILED, error=reason)

    def _send_status(
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


def _details(outcome: JobOutcome) -> dict[str, object]:
    details: dict[str, object] = {}
    if outcome.exit_code is not None:
        details["exit_code"] = outcome.exit_code
    if outcome.outputs:
        details["outputs"] = list(outcome.outputs)
    return details
