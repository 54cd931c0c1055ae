"""The agent daemon: claims jobs, runs each in a ``job_slot``, delivers reports, stops.

Stops come in two kinds (after buildkite's agent): the first SIGTERM/SIGINT *drains*
(finish the running jobs, claim nothing new, deliver every report, exit 0); the second
*forces*: running jobs are cancelled with the kill ladder and reported failed with
"agent stopped". ``--max-jobs`` and ``--idle-exit`` stop the same way as a first
signal. ``drain()`` and ``resume()`` (the status API's) only stop and restart claiming.

At start, before claiming, the daemon cleans up after a crash (``journal``), prunes old
finished jobs (``pruning``) and gives the outbox ``startup_drain_s`` to empty. It never
exits because the backend cannot be reached. Exit codes: ``EXIT_OK`` (0) after a stop,
``EXIT_REVOKED`` (4) when the platform revoked the agent (after its jobs ended: a service
manager tells "do not restart me" from a crash). On a 426 (the backend needs a newer
agent) ``run`` raises ``AgentOutdatedError`` once the jobs end (``start`` exits 5).
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

from training_agent.disk_room import DiskRoom
from training_agent.job_slot import AGENT_STOPPED, JobSlots
from training_agent.jobs import ClaimedJob
from training_agent.journal import recover_jobs
from training_agent.poller import Poller
from training_agent.pruning import JobPruner
from training_agent.reporting.artifacts import ArtifactUploader
from training_agent.reporting.outbox import Outbox
from training_agent.reporting.uploader import Uploader
from training_agent.resources import ResourceMonitor
from training_agent.status.state import AgentState
from training_agent.supervise import supervise

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_REVOKED = 4
EXIT_OUTDATED = 5  # the CLI's code for AgentOutdatedError: install the new version first
EXIT_UPDATE = 75  # stopped for the self-update: run_agent switches builds and re-executes
# How long a stopping agent keeps trying to deliver reports before it exits; what is
# left stays in the outbox and goes out at the next start.
FINAL_FLUSH_S = 30.0
# How long a starting agent waits for the reports of its last run before it claims.
STARTUP_DRAIN_S = 30.0
SAMPLER = "the resource sampler"

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class DaemonOptions:
    """What the daemon needs from the settings (a job's own needs: ``JobOptions``)."""

    max_jobs: int | None = None
    max_concurrent_jobs: int = 1
    idle_exit_s: float | None = None
    min_free_disk_gb: float = 0.0
    flush_timeout_s: float = FINAL_FLUSH_S
    startup_drain_s: float = STARTUP_DRAIN_S
    labels: tuple[str, ...] = ()  # sent with every poll: jobs may require them


class Daemon:
    """One agent: polls, runs up to ``max_concurrent_jobs`` jobs, reports, stops cleanly.

    Implements ``state.Controller`` (``drain``, ``resume``, ``cancel_job``). Built by
    ``runtime.build_agent``, which wires its parts.
    """

    def __init__(
        self,
        *,
        options: DaemonOptions,
        poller: Poller,
        uploader: Uploader,
        jobs: JobSlots,
        outbox: Outbox,
        state: AgentState,
        resources: ResourceMonitor,
        jobs_dir: Path,
        journals_dir: Path,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        artifacts: ArtifactUploader | None = None,
        pruner: JobPruner | None = None,
    ) -> None:
        """``artifacts`` uploads finished jobs' outputs, ``pruner`` removes old finished
        jobs (None: neither, as in a test of the daemon alone)."""
        self._options = options
        self.artifacts, self.pruner = artifacts, pruner
        self.poller = poller
        self.uploader = uploader
        self._jobs = jobs
        self._outbox = outbox
        self._state = state
        self._resources = resources
        self._journals_dir = journals_dir
        self._clock = clock
        self._sleep = sleep
        self._active: set[str] = set()  # claimed and not yet finished
        self._started = 0
        self._draining = False  # claim nothing new
        self._stopping = False  # and exit once no job runs
        self._for_update = False  # the stop is the self-update's: exit EXIT_UPDATE
        self.update_info: Callable[[], dict[str, object] | None] = lambda: None
        self._ready = False  # the reports of the last run had their chance first
        self._room = DiskRoom(jobs_dir, options.min_free_disk_gb, outbox, state)
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
        self._state.set_draining(True)

    def resume(self) -> None:
        """Claim jobs again after ``drain``; refused once the agent is stopping."""
        if self._stopping:
            log.warning("the agent is stopping; it cannot take jobs again")
            return
        if self._draining:
            log.info("resuming: taking jobs again")
        self._draining = False
        self._state.set_draining(False)
        self.poller.wake()

    def cancel_job(self, job_id: str, reason: str) -> bool:
        """Cancel a running job with the kill ladder; False when it does not run here."""
        return self._jobs.cancel(job_id, reason)

    # -- stops --------------------------------------------------------------------------

    def stop(self) -> None:
        """Drain, then exit once no job runs."""
        self._stopping = True
        self.drain()
        self._changed.set()
        self._stop_polling_when_idle()

    def stop_for_update(self) -> None:
        """The new build is ready: finish the running jobs, then exit ``EXIT_UPDATE``."""
        if not self._stopping:
            log.info("stopping for the update once %d running job(s) ended", len(self._active))
            self._for_update = True
        self.stop()

    def force_stop(self) -> None:
        """Cancel running jobs now; they are reported failed with "agent stopped"."""
        self.stop()
        self._jobs.cancel_all(AGENT_STOPPED)

    def request_stop(self) -> None:
        """A stop signal: drain the first time, force the second. A stop that comes while
        the daemon waits to switch to a new build is the first: the agent stops (exit 0)
        once its jobs ended, and the update waits for the next start."""
        if self._for_update:
            log.warning("stop signal: stopping after the running jobs; the update waits")
            self._for_update = False
            self.stop()
        elif self._stopping:
            log.warning("second stop signal: cancelling running jobs")
            self.force_stop()
        else:
            self.stop()

    # -- the loop -----------------------------------------------------------------------

    async def run(self) -> int:
        """Run until stopped and drained; the process exit code."""
        self._recover()
        self._idle_since = self._clock()  # idle from now, not from when it was built
        self._ready = not self._outbox.unfinished_jobs()
        helpers = [self._supervised("the uploader", self.uploader.run)]
        if self.artifacts is not None:
            helpers.append(self._supervised("the artifact uploader", self.artifacts.run))
        helpers.append(self._supervised("the start-up delivery", self._startup_drain))
        if self.pruner is not None:  # after _recover: an interrupted job is not finished
            helpers.append(self._supervised("the job pruner", self.pruner.run))
        if self._options.idle_exit_s is not None:
            helpers.append(self._supervised("the --idle-exit watch", self._idle_watch))
        try:
            async with asyncio.TaskGroup() as group:
                await supervise(
                    "the poll loop",
                    lambda: self._claim_jobs(group),
                    sleep=self.poller.pause,  # a stop cuts the wait short
                    on_problem=self._state.set_problem,
                )
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
        return EXIT_UPDATE if self._for_update else EXIT_OK

    async def _claim_jobs(self, group: asyncio.TaskGroup) -> None:
        """Take each job the poller claims into a task of ``group``, until it stops."""
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

    def _supervised(self, name: str, run: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        return asyncio.create_task(
            supervise(name, run, sleep=self._sleep, on_problem=self._state.set_problem),
            name=name,
        )

    def poll_headers(self) -> dict[str, str]:
        """``X-Agent-Info`` and ``X-Agent-Current-Jobs`` for the next poll. A failing
        resource sampler (a broken NVML, a vanished work dir) costs only ``X-Agent-Info``,
        logged once with its traceback and shown in ``status`` until it works again."""
        headers = {"X-Agent-Current-Jobs": ",".join(sorted(self._active))}
        try:
            headers["X-Agent-Info"] = self._resources.info_header(
                busy_jobs=len(self._active),
                max_jobs=self._options.max_concurrent_jobs,
                update=self.update_info(),
                labels=self._options.labels,
                busy_gpus=self._jobs.busy_gpus(),
            )
            self._state.set_resources(self._resources.sample())
        except Exception as exc:
            if SAMPLER not in self._state.problems:
                log.error(
                    "cannot sample this machine's resources (a bug in the agent: please "
                    "report it with this traceback); polling without them",
                    exc_info=exc,
                )
                self._state.set_problem(SAMPLER, f"{SAMPLER} failed: {exc!r}")
        else:
            if SAMPLER in self._state.problems:
                log.info("%s works again", SAMPLER)
                self._state.set_problem(SAMPLER, None)
        return headers

    def holds(self, job_id: str) -> bool:
        """Whether the job runs here or its reports are not all delivered: a backend
        offering it again (a claim answer it thinks lost) must not get it run twice."""
        if job_id in self._active:
            return True
        return self._outbox.has_job(job_id) and not self._outbox.is_finished(job_id)

    def _has_room(self) -> bool:
        if self._draining or not self._ready:
            return False
        if len(self._active) >= self._options.max_concurrent_jobs:
            return False
        if not self._jobs.has_free_gpus():
            return False
        return self._room.ok()

    # -- one job ------------------------------------------------------------------------

    async def _run_job(self, job: ClaimedJob) -> None:
        try:
            await self._jobs.run(job)
        except Exception as exc:  # one job's failure must not cancel the others
            log.error(
                "job %s: the agent failed handling it (a bug in the agent: please report it "
                "with this traceback)",
                job.id,
                exc_info=exc,
            )
        finally:
            self._active.discard(job.id)
            self._idle_since = self._clock()
            self._changed.set()
        self.poller.wake()
        self._stop_polling_when_idle()

    # -- start and end ------------------------------------------------------------------

    def _recover(self) -> None:
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
        self._idle_since = self._clock()  # delivering the last run's reports is not idle
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
        try:
            await asyncio.wait_for(self._deliver(pending), self._options.flush_timeout_s)
        except TimeoutError:
            log.warning(
                "reports not delivered within %.0fs; they stay in the outbox and "
                "go out at the next start",
                self._options.flush_timeout_s,
            )

    async def _deliver(self, pending: list[str]) -> None:
        # A stop that came before any poll was answered (--idle-exit on a slow start, a
        # signal) leaves the backend's extensions unknown, and nothing is sent without
        # them: ask for them with polls that claim nothing.
        while self.poller.known_features() is None:
            step = await self.poller.step(can_claim=False)
            if self.poller.known_features() is None:
                await self._sleep(step.delay_s)
        await asyncio.gather(*(self.uploader.wait_delivered(job_id) for job_id in pending))


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
