"""The agent daemon: wires poller, job runners, control and uploader together.

Stops come in two kinds (after buildkite's agent): the first SIGTERM/SIGINT *drains*
(finish the running jobs, claim nothing new, deliver every report, exit 0); the second
*forces*: running jobs are cancelled with the kill ladder and reported failed with
"agent stopped". ``--max-jobs`` and ``--idle-exit`` stop the same way as a first
signal. ``drain()`` and ``resume()`` (the status API's) only stop and restart claiming.

At start, before claiming anything, the daemon cleans up after a crash (``journal``)
and gives the reports left in the outbox ``startup_drain_s`` to go out. It never exits
because the backend cannot be reached. Exit codes: ``EXIT_OK`` (0) after a stop, and
``EXIT_REVOKED`` (4) when the platform revoked the agent (after its running jobs
ended), so a service manager can tell "do not restart me" from a crash. When the backend
answers 426 (it needs a newer agent), ``run`` raises the poller's ``AgentOutdatedError``
once the running jobs end; ``start`` prints its sentence and exits ``EXIT_OUTDATED`` (5).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from training_agent.api import BackendClient
from training_agent.control import LEASE_LOST, JobControl
from training_agent.dataset_cache import DatasetCache
from training_agent.errors import HttpStatusError, StateError
from training_agent.executor.dataset import DatasetFetcher
from training_agent.executor.runner import JobRunner
from training_agent.jobs import ClaimedJob, JobOutcome, JobSink, JobStatus
from training_agent.journal import JobJournal, JournalStatus, recover_jobs
from training_agent.poller import Poller
from training_agent.reporting.outbox import Outbox
from training_agent.reporting.sink import OutboxSink
from training_agent.reporting.uploader import Uploader
from training_agent.resources import (
    CUDA_VISIBLE_DEVICES,
    GIB,
    GpuPool,
    ResourceMonitor,
    free_disk_bytes,
)
from training_agent.state import AgentState, JobViewStatus

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_REVOKED = 4
EXIT_OUTDATED = 5  # the CLI's code for AgentOutdatedError: install the new version first
AGENT_STOPPED = "agent stopped"
# How long a stopping agent keeps trying to deliver reports before it exits; what is
# left stays in the outbox and goes out at the next start.
FINAL_FLUSH_S = 30.0
# How long a starting agent waits for the reports of its last run before it claims.
STARTUP_DRAIN_S = 30.0

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class DaemonOptions:
    """What the daemon needs from the settings."""

    allow_command_jobs: bool
    cancel_grace_s: float
    training_python: str | None = None
    max_jobs: int | None = None
    max_concurrent_jobs: int = 1
    idle_exit_s: float | None = None
    heartbeat_interval_s: float = 10.0
    min_free_disk_gb: float = 0.0
    flush_timeout_s: float = FINAL_FLUSH_S
    startup_drain_s: float = STARTUP_DRAIN_S
    dataset_cache_dir: Path | None = None  # None: no backend-held datasets are fetched


@dataclass
class _Running:
    """One job between its claim and its end."""

    job: ClaimedJob
    sink: OutboxSink
    runner: JobRunner
    control: JobControl
    journal: JobJournal | None


class Daemon:
    """One agent: polls, runs up to ``max_concurrent_jobs`` jobs, reports, stops cleanly.

    Implements ``state.Controller`` (``drain``, ``resume``, ``cancel_job``).
    """

    def __init__(
        self,
        *,
        client: BackendClient,
        outbox: Outbox,
        jobs_dir: Path,
        options: DaemonOptions,
        poller: Poller | None = None,
        state: AgentState | None = None,
        journals_dir: Path | None = None,
        resources: ResourceMonitor | None = None,
        gpus: GpuPool | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._client = client
        self._outbox = outbox
        self._jobs_dir = jobs_dir
        self._options = options
        self._state = state
        self._journals_dir = journals_dir
        self._resources = resources
        self._gpus = gpus
        self._clock = clock
        self._sleep = sleep
        self.poller = poller or Poller(client=client, state=state)
        self.uploader = Uploader(
            outbox=outbox,
            client=client,
            features=self._known_features,
            on_control=self._on_control,
            on_gone=self._on_gone,
            on_delivered=self._on_delivered,
        )
        cache_dir = options.dataset_cache_dir
        self._datasets = (
            None
            if cache_dir is None
            else DatasetFetcher(client=client, cache=DatasetCache(cache_dir), sleep=sleep)
        )
        self._active: set[str] = set()  # claimed and not yet finished
        self._running: dict[str, _Running] = {}
        self._journals: dict[str, JobJournal] = {}  # finished jobs until delivered
        self._started = 0
        self._draining = False  # claim nothing new
        self._stopping = False  # and exit once no job runs
        self._forced = False
        self._ready = False  # the reports of the last run had their chance first
        self._disk_low = False
        self._idle_since = clock()
        self._changed = asyncio.Event()  # a job started or ended, or a stop came

    # -- Controller ---------------------------------------------------------------------

    @property
    def draining(self) -> bool:
        return self._draining

    def drain(self) -> None:
        """Finish running jobs and claim nothing new (until ``resume``)."""
        if not self._draining:
            log.info(
                "draining: finishing %d running job(s), claiming no new ones", len(self._active)
            )
        self._draining = True
        if self._state is not None:
            self._state.set_draining(True)

    def resume(self) -> None:
        """Claim jobs again after ``drain``; refused once the agent is stopping."""
        if self._stopping:
            log.warning("the agent is stopping; it cannot take jobs again")
            return
        if self._draining:
            log.info("resuming: taking jobs again")
        self._draining = False
        if self._state is not None:
            self._state.set_draining(False)
        self.poller.wake()

    def cancel_job(self, job_id: str, reason: str) -> bool:
        """Cancel a running job with the kill ladder; False when it does not run here."""
        running = self._running.get(job_id)
        if running is None:
            return False
        running.runner.request_cancel(reason)
        if self._state is not None:
            self._state.job_status(job_id, JobViewStatus.CANCELLING, reason=reason)
        return True

    # -- stops --------------------------------------------------------------------------

    def stop(self) -> None:
        """Drain, then exit once no job runs."""
        self._stopping = True
        self.drain()
        self._changed.set()
        self._stop_polling_when_idle()

    def force_stop(self) -> None:
        """Cancel running jobs now; they are reported failed with "agent stopped"."""
        self._forced = True
        self.stop()
        for running in self._running.values():
            running.runner.request_cancel(AGENT_STOPPED)

    def request_stop(self) -> None:
        """A stop signal: drain the first time, force the second."""
        if self._stopping:
            log.warning("second stop signal: cancelling running jobs")
            self.force_stop()
        else:
            self.stop()

    # -- the loop -----------------------------------------------------------------------

    async def run(self) -> int:
        """Run until stopped and drained; the process exit code."""
        self._recover()
        self._ready = not self._outbox.unfinished_jobs()
        helpers = [asyncio.create_task(self.uploader.run(), name="uploader")]
        helpers.append(asyncio.create_task(self._startup_drain(), name="startup-drain"))
        if self._options.idle_exit_s is not None:
            helpers.append(asyncio.create_task(self._idle_watch(), name="idle-exit"))
        try:
            async with asyncio.TaskGroup() as group:
                async for job in self.poller.jobs(can_claim=self._has_room):
                    self._started += 1
                    self._active.add(job.id)
                    self._changed.set()
                    group.create_task(self._run_job(job), name=f"job-{job.id}")
                    if self._options.max_jobs and self._started >= self._options.max_jobs:
                        log.info("claimed %d job(s), the --max-jobs limit", self._started)
                        self.stop()
                if self.poller.revoked or self.poller.outdated:
                    self.drain()
            await self._flush()
        finally:
            for helper in helpers:
                helper.cancel()
            for helper in helpers:
                with contextlib.suppress(asyncio.CancelledError):
                    await helper
        if self.poller.revoked:
            log.error("exiting with code %d: %s", EXIT_REVOKED, self.poller.revoked)
            return EXIT_REVOKED
        if self.poller.outdated is not None:
            raise self.poller.outdated
        log.info("agent stopped after %d job(s)", self._started)
        return EXIT_OK

    def poll_headers(self) -> dict[str, str]:
        """``X-Agent-Info`` and ``X-Agent-Current-Jobs`` for the next poll."""
        headers = {"X-Agent-Current-Jobs": ",".join(sorted(self._active))}
        if self._resources is not None:
            headers["X-Agent-Info"] = self._resources.info_header(
                busy_jobs=len(self._active), max_jobs=self._options.max_concurrent_jobs
            )
            if self._state is not None:
                self._state.set_resources(self._resources.sample())
        return headers

    def _has_room(self) -> bool:
        if self._draining or not self._ready:
            return False
        if len(self._active) >= self._options.max_concurrent_jobs:
            return False
        if self._gpus is not None and not self._gpus.has_free_share():
            return False
        return self._disk_ok()

    def _disk_ok(self) -> bool:
        minimum = self._options.min_free_disk_gb
        free = free_disk_bytes(self._jobs_dir) if minimum > 0 else None
        low = free is not None and free < minimum * GIB
        if low and not self._disk_low:
            log.warning(
                "only %.1f GB free in %s, below min_free_disk_gb = %g: taking no jobs "
                "until space is freed",
                (free or 0) / GIB,
                self._jobs_dir,
                minimum,
            )
        elif self._disk_low and not low:
            log.info("free disk space is back above min_free_disk_gb; taking jobs again")
        self._disk_low = low
        return not low

    # -- one job ------------------------------------------------------------------------

    async def _run_job(self, job: ClaimedJob) -> None:
        running = self._start(job)
        watch = asyncio.create_task(running.control.watch(), name=f"control-{job.id}")
        try:
            outcome = await self._execute(running.runner)
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
            self._running.pop(job.id, None)
            self._active.discard(job.id)
            if self._gpus is not None:
                self._gpus.release(job.id)
            self._idle_since = self._clock()
            self._changed.set()
        self._finish(running, outcome)
        self.poller.wake()
        self._stop_polling_when_idle()

    def _start(self, job: ClaimedJob) -> _Running:
        self._outbox.open_job(job.id, job.job_token)
        journal = self._journal(job.id)
        if journal is not None:
            journal.start()
        sink = OutboxSink(self._outbox, job.id, wake=self.uploader.wake)
        job_sink: JobSink = sink
        if self._state is not None:
            self._state.job_started(job.id, model_name=job.model_name)
            job_sink = self._state.observe(job.id, sink)
        sink.status(JobStatus.RUNNING)
        gpu = self._gpus.acquire(job.id) if self._gpus is not None else None
        runner = JobRunner(
            job=job,
            jobs_dir=self._jobs_dir,
            sink=job_sink,
            allow_command_jobs=self._options.allow_command_jobs,
            cancel_grace_s=self._options.cancel_grace_s,
            training_python=self._options.training_python,
            extra_env={CUDA_VISIBLE_DEVICES: gpu} if gpu is not None else None,
            on_started=journal.started if journal is not None else None,
            on_status=lambda status: self._trainer_status(job.id, sink, status),
            datasets=self._datasets,
        )
        control = JobControl(
            job=job,
            runner=runner,
            client=self._client,
            features=lambda: self.poller.features,
            interval_s=self._options.heartbeat_interval_s,
            sleep=self._sleep,
            on_lost=self._on_lost,
        )
        running = _Running(job, sink, runner, control, journal)
        self._running[job.id] = running
        if self._forced:
            runner.request_cancel(AGENT_STOPPED)
        return running

    async def _execute(self, runner: JobRunner) -> JobOutcome:
        try:
            return await runner.run()
        except Exception as exc:  # a bug in the agent must not leave the job "running"
            log.exception("the agent failed while running a job")
            return JobOutcome(JobStatus.FAILED, reason=f"internal error in the agent: {exc!r}")

    def _finish(self, running: _Running, outcome: JobOutcome) -> None:
        job_id = running.job.id
        lost = running.control.lost
        if lost is not None:
            self._outbox.finish_job(job_id)  # whatever is left can never be delivered
            if running.journal is not None:
                running.journal.finish(JournalStatus.LOST)
                running.journal.remove()
            self._finished_in_state(job_id, JobViewStatus.FAILED, lost)
            log.warning("job %s stopped: %s", job_id, lost)
            return
        outcome = self._as_reported(outcome)
        running.sink.status(outcome.status, error=outcome.reason, details=_details(outcome))
        if running.journal is not None:
            running.journal.finish(JournalStatus(outcome.status))  # removed once delivered
            self._journals[job_id] = running.journal
        self._finished_in_state(job_id, JobViewStatus(outcome.status), outcome.reason)
        reason = f": {outcome.reason}" if outcome.reason else ""
        log.info("job %s %s%s", job_id, outcome.status.value, reason)

    def _as_reported(self, outcome: JobOutcome) -> JobOutcome:
        # A job the agent cancelled because it was stopped did not fail of its own
        # accord, but it did not finish either: "failed" lets the user retry it.
        if outcome.status is JobStatus.CANCELLED and outcome.reason == AGENT_STOPPED:
            return JobOutcome(
                JobStatus.FAILED, outcome.exit_code, outcome.signal, AGENT_STOPPED, outcome.outputs
            )
        return outcome

    def _journal(self, job_id: str) -> JobJournal | None:
        if self._journals_dir is None:
            return None
        try:
            return JobJournal(self._journals_dir, job_id)
        except StateError as exc:
            log.warning("job %s: no journal: %s", job_id, exc)
            return None

    # -- what the parts report ----------------------------------------------------------

    def _known_features(self) -> frozenset[str] | None:
        return self.poller.features if self.poller.features_known else None

    def _trainer_status(self, job_id: str, sink: OutboxSink, status: JobStatus) -> None:
        sink.status(status)
        log.info("job %s %s", job_id, "paused" if status is JobStatus.PAUSED else "resumed")
        if self._state is not None:
            self._state.job_status(job_id, JobViewStatus(status))

    def _on_control(self, job_id: str, control: str) -> None:
        if running := self._running.get(job_id):
            running.control.apply(control)

    def _on_gone(self, job_id: str, exc: HttpStatusError) -> None:
        if running := self._running.get(job_id):
            running.control.lose(f"{LEASE_LOST}: {exc}")

    def _on_lost(self, job_id: str) -> None:
        self._outbox.finish_job(job_id)  # not even the lines of its last seconds go out
        if self._state is not None:
            self._state.job_status(job_id, JobViewStatus.CANCELLING, reason=LEASE_LOST)

    def _on_delivered(self, job_id: str) -> None:
        if journal := self._journals.pop(job_id, None):
            journal.remove()

    def _finished_in_state(self, job_id: str, status: JobViewStatus, error: str | None) -> None:
        if self._state is not None:
            self._state.job_finished(job_id, status=status, error=error)

    # -- start and end ------------------------------------------------------------------

    def _recover(self) -> None:
        if self._journals_dir is None:
            return
        reported = recover_jobs(self._journals_dir, self._outbox)
        if reported:
            log.warning(
                "reported %d job(s) failed that ran when the agent stopped unexpectedly: %s",
                len(reported),
                ", ".join(reported),
            )

    async def _startup_drain(self) -> None:
        """Give the reports of the last run their chance before claiming anything."""
        pending = [job_id for job_id, _ in self._outbox.unfinished_jobs()]
        if pending:
            log.info("delivering the reports of %d job(s) from the last run first", len(pending))
            waits = asyncio.gather(*(self.uploader.wait_delivered(job) for job in pending))
            try:
                await asyncio.wait_for(waits, self._options.startup_drain_s)
            except TimeoutError:
                log.warning(
                    "reports of the last run not delivered within %.0fs; taking jobs "
                    "meanwhile, they go out when the backend answers",
                    self._options.startup_drain_s,
                )
        self._ready = True
        self.poller.wake()

    async def _idle_watch(self) -> None:
        """Stop after ``idle_exit_s`` without a job (``--idle-exit``)."""
        limit = self._options.idle_exit_s or 0.0
        while not self._stopping:
            self._changed.clear()
            remaining = self._idle_since + limit - self._clock()
            if not self._active and remaining <= 0:
                log.info("no job for %.0fs (--idle-exit): stopping", limit)
                self.stop()
                return
            waits: list[asyncio.Future[object]] = [asyncio.ensure_future(self._changed.wait())]
            if not self._active:
                waits.append(asyncio.ensure_future(self._sleep(remaining)))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()

    def _stop_polling_when_idle(self) -> None:
        # A stopping agent keeps polling (without claiming) while its last jobs run, so
        # the platform still shows it online.
        if self._stopping and not self._active:
            self.poller.stop()

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
