"""The agent daemon: wires poller, job runners and uploader together in one TaskGroup.

Stops come in two kinds (after buildkite's agent): the first SIGTERM/SIGINT *drains*
(finish the running job, claim nothing new, deliver every report, exit); the second
*forces*: the running job is cancelled with the kill ladder and reported failed with
"agent stopped".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from training_agent.api import BackendClient
from training_agent.executor.runner import JobRunner
from training_agent.jobs import ClaimedJob, JobOutcome, JobStatus
from training_agent.poller import Poller
from training_agent.reporting.outbox import Outbox
from training_agent.reporting.sink import OutboxSink
from training_agent.reporting.uploader import Uploader

log = logging.getLogger(__name__)

# How long a stopping agent keeps trying to deliver reports before it exits; what is
# left stays in the outbox and goes out at the next start.
FINAL_FLUSH_S = 30.0


@dataclass(frozen=True)
class DaemonOptions:
    """What the daemon needs from the settings."""

    allow_command_jobs: bool
    cancel_grace_s: float
    max_jobs: int | None = None
    max_concurrent_jobs: int = 1
    flush_timeout_s: float = FINAL_FLUSH_S


class Daemon:
    """One agent: polls, runs up to ``max_concurrent_jobs`` jobs, reports, stops cleanly."""

    def __init__(
        self,
        *,
        client: BackendClient,
        outbox: Outbox,
        jobs_dir: Path,
        options: DaemonOptions,
        poller: Poller | None = None,
    ) -> None:
        self._client = client
        self._outbox = outbox
        self._jobs_dir = jobs_dir
        self._options = options
        self.poller = poller or Poller(client=client)
        self.uploader = Uploader(
            outbox=outbox, client=client, features=lambda: self.poller.features
        )
        self._active: set[str] = set()  # claimed and not yet finished
        self._runners: dict[str, JobRunner] = {}  # the active jobs' runners, to cancel them
        self._started = 0
        self._draining = False
        self._forced = False

    @property
    def draining(self) -> bool:
        return self._draining

    def drain(self) -> None:
        """Finish running jobs, claim nothing new, then exit."""
        if not self.draining:
            log.info(
                "draining: finishing %d running job(s), claiming no new ones", len(self._active)
            )
        self._draining = True
        self._stop_polling_when_idle()

    def force_stop(self) -> None:
        """Cancel running jobs now; they are reported failed with "agent stopped"."""
        self._forced = True
        self.drain()
        for runner in self._runners.values():
            runner.request_cancel("agent stopped")

    def request_stop(self) -> None:
        """A stop signal: drain the first time, force the second."""
        if self.draining:
            log.warning("second stop signal: cancelling running jobs")
            self.force_stop()
        else:
            self.drain()

    async def run(self) -> int:
        """Run until drained; the process exit code."""
        uploader = asyncio.create_task(self.uploader.run(), name="uploader")
        try:
            async with asyncio.TaskGroup() as group:
                async for job in self.poller.jobs(can_claim=self._has_room):
                    self._started += 1
                    self._active.add(job.id)
                    group.create_task(self._run_job(job), name=f"job-{job.id}")
                    if self._options.max_jobs and self._started >= self._options.max_jobs:
                        log.info("claimed %d job(s), the --max-jobs limit", self._started)
                        self.drain()
            await self._flush()
        finally:
            uploader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await uploader
        log.info("agent stopped after %d job(s)", self._started)
        return 0

    def _has_room(self) -> bool:
        return not self.draining and len(self._active) < self._options.max_concurrent_jobs

    async def _run_job(self, job: ClaimedJob) -> None:
        self._outbox.open_job(job.id, job.job_token)
        sink = OutboxSink(self._outbox, job.id, wake=self.uploader.wake)
        sink.status(JobStatus.RUNNING)
        try:
            outcome = self._as_reported(await self._execute(job, sink))
        finally:
            self._active.discard(job.id)
        sink.status(outcome.status, error=outcome.reason, details=_details(outcome))
        log.info(
            "job %s %s%s",
            job.id,
            outcome.status.value,
            f": {outcome.reason}" if outcome.reason else "",
        )
        self.poller.wake()
        self._stop_polling_when_idle()

    async def _execute(self, job: ClaimedJob, sink: OutboxSink) -> JobOutcome:
        runner = JobRunner(
            job=job,
            jobs_dir=self._jobs_dir,
            sink=sink,
            allow_command_jobs=self._options.allow_command_jobs,
            cancel_grace_s=self._options.cancel_grace_s,
        )
        self._runners[job.id] = runner
        if self._forced:
            runner.request_cancel("agent stopped")
        try:
            return await runner.run()
        except Exception as exc:  # a bug in the agent must not leave the job "running"
            log.exception("job %s: the agent failed while running it", job.id)
            return JobOutcome(JobStatus.FAILED, reason=f"internal error in the agent: {exc!r}")
        finally:
            del self._runners[job.id]

    def _stop_polling_when_idle(self) -> None:
        # A draining agent keeps polling (without claiming) while its last jobs run, so
        # the platform still shows it online.
        if self.draining and not self._active:
            self.poller.stop()

    def _as_reported(self, outcome: JobOutcome) -> JobOutcome:
        # A job the agent cancelled because it was stopped did not fail of its own
        # accord, but it did not finish either: "failed" lets the user retry it.
        if self._forced and outcome.status is JobStatus.CANCELLED:
            return JobOutcome(
                JobStatus.FAILED,
                outcome.exit_code,
                outcome.signal,
                "agent stopped",
                outcome.outputs,
            )
        return outcome

    async def _flush(self) -> None:
        pending = [job_id for job_id, _ in self._outbox.unfinished_jobs()]
        if not pending:
            return
        log.info("delivering the last reports of %d job(s)", len(pending))
        waits = [self.uploader.wait_delivered(job_id) for job_id in pending]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), self._options.flush_timeout_s)
        except TimeoutError:
            log.warning(
                "reports not delivered within %.0fs; they stay in the outbox and "
                "go out at the next start",
                self._options.flush_timeout_s,
            )


def _details(outcome: JobOutcome) -> dict[str, object]:
    details: dict[str, object] = {}
    if outcome.exit_code is not None:
        details["exit_code"] = outcome.exit_code
    if outcome.outputs:
        details["outputs"] = list(outcome.outputs)
    return details


def install_signal_handlers(
    loop: asyncio.AbstractEventLoop, on_stop: Callable[[], None]
) -> Callable[[], Awaitable[None] | None]:
    """Route SIGTERM and SIGINT to ``on_stop``; returns a function that removes them."""
    signals = [signal.SIGINT] + ([signal.SIGTERM] if sys.platform != "win32" else [])
    for sig in signals:
        try:
            loop.add_signal_handler(sig, on_stop)
        except NotImplementedError:  # Windows event loops: fall back to signal.signal
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(on_stop))

    def remove() -> None:
        for sig in signals:
            with contextlib.suppress(NotImplementedError, ValueError):
                loop.remove_signal_handler(sig)

    return remove
