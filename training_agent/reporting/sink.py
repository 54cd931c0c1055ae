"""``JobReports``: the one sink of a running job, feeding the outbox and the agent state.

Everything a job reports goes through it once and lands in both places: the outbox
(durable, for the backend; the uploader delivers it) and the ``AgentState`` (for
``status``, the dashboard and the status API). The runner writes log lines, metric
points and progress; the job's slot writes its status changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from training_agent.errors import StateError
from training_agent.jobs import JobOutcome, JobStatus
from training_agent.reporting.outbox import Outbox
from training_agent.status.state import AgentState, JobViewStatus

log = logging.getLogger(__name__)


#: Reports a job may keep in memory while the outbox's disk is full; past it, further
#: log lines are counted and replaced by one notice (metrics and statuses are all kept).
MAX_HELD = 100_000
RETRY_HELD_S = 1.0  # how often held reports try the outbox again
OUTBOX = "outbox"  # the agent state's problem while reports wait in memory


class JobReports:
    """One job's reports, to the outbox (waking the uploader) and to the agent state.

    Never raises for the outbox: a job must not die because its report could not be
    stored. A failed write is logged once per kind of report and dropped; when the disk
    is full (``Outbox.full``) the report is held in memory instead, with every later one
    in order, and written once space is back (tried every ``RETRY_HELD_S``), so the
    trainer's output is neither lost nor reordered; ``status`` shows the problem.
    """

    def __init__(
        self, outbox: Outbox, state: AgentState, job_id: str, *, wake: Callable[[], None]
    ) -> None:
        self._outbox = outbox
        self._state = state
        self._job_id = job_id
        self._wake = wake
        self._failed: set[str] = set()
        self._held: deque[tuple[str, Callable[..., None], tuple[Any, ...], dict[str, Any]]]
        self._held = deque()
        self._skipped = 0  # log lines past MAX_HELD
        self._retry: asyncio.TimerHandle | None = None

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
        self._held.clear()
        try:
            self._outbox.finish_job(self._job_id)
        except StateError as exc:  # the uploader gives it up at the backend's next answer
            log.error("job %s: cannot mark it given up in the outbox: %s", self._job_id, exc)

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
        if self._held:  # behind the held ones, in order; the timer writes them
            self._hold(kind, write, args, kwargs)
            self._schedule_retry()
            return
        try:
            write(*args, **kwargs)
        except StateError as exc:
            if self._outbox.full is not None:
                self._hold(kind, write, args, kwargs)
                log.error("job %s: %s", self._job_id, self._outbox.full)
                self._state.set_problem(OUTBOX, self._outbox.full)
                self._schedule_retry()
            elif kind not in self._failed:
                self._failed.add(kind)
                log.error("job %s: cannot store a %s report: %s", self._job_id, kind, exc)
            return
        self._wake()

    @property
    def held(self) -> int:
        """How many reports wait in memory for the outbox."""
        return len(self._held)

    def retry_held(self) -> None:
        """Write the held reports to the outbox, in order, as far as it takes them."""
        if not self._held:
            return
        while self._held:
            kind, write, args, kwargs = self._held[0]
            try:
                write(*args, **kwargs)
            except StateError:
                if self._outbox.full is None:  # another failure: as _store would drop it
                    self._held.popleft()
                    log.error("job %s: cannot store a held %s report", self._job_id, kind)
                    continue
                self._schedule_retry()
                return
            self._held.popleft()
        if self._skipped:
            skipped, self._skipped = self._skipped, 0
            self._store("log", self._outbox.append_logs, self._job_id, [_skipped(skipped)])
        log.info("job %s: the outbox has room again; its held reports are stored", self._job_id)
        self._state.set_problem(OUTBOX, None)
        self._wake()

    def _hold(
        self, kind: str, write: Callable[..., None], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        if kind == "log" and len(self._held) >= MAX_HELD:
            self._skipped += 1
            return
        self._held.append((kind, write, args, kwargs))

    def _schedule_retry(self) -> None:
        if self._retry is not None and not self._retry.cancelled():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not in the daemon (a unit test): retry_held by hand
            return

        def again() -> None:
            self._retry = None
            self.retry_held()

        self._retry = loop.call_later(RETRY_HELD_S, again)


def _skipped(count: int) -> str:
    return (
        f"[training-agent] {count} log lines were skipped here: the agent's disk was full "
        f"and more than {MAX_HELD:,} reports waited in memory"
    )


def _details(outcome: JobOutcome) -> dict[str, object]:
    details: dict[str, object] = {}
    if outcome.exit_code is not None:
        details["exit_code"] = outcome.exit_code
    if outcome.outputs:
        details["outputs"] = list(outcome.outputs)
    return details
