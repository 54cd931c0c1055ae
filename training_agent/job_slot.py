"""The jobs running on this agent, each from its claim to its end.

``JobSlots.run(job)`` is one job's whole life: its journal (``journal``), its one sink
(``reporting.sink.JobReports``), its runner (``executor.runner``) and its heartbeat
(``control``), started together and torn down together. ``JobSlots`` also routes what
comes from outside to the right job: a cancel from the status API, a ``control`` or a
"job gone" from the uploader, and the delivery of a job's last report (which removes its
journal).

A job ends in a ``JobOutcome``, reported as it is, except that a job cancelled because
the agent was force-stopped is reported ``failed`` with ``AGENT_STOPPED`` (the user can
retry it); a job the backend gave up (a lost lease) reports nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training_agent import heap
from training_agent.api import BackendClient
from training_agent.control import LEASE_LOST, JobControl, gone_reason
from training_agent.errors import HttpStatusError, StateError
from training_agent.executor.dataset import DatasetFetcher
from training_agent.executor.outputs import plan_uploads
from training_agent.executor.runner import JobRunner
from training_agent.job_policy import JobPolicy
from training_agent.jobs import ClaimedJob, JobOutcome, JobOutput, JobStatus
from training_agent.journal import JobJournal, JournalStatus
from training_agent.reporting.outbox import Outbox
from training_agent.reporting.sink import JobReports
from training_agent.resources import CUDA_VISIBLE_DEVICES, GpuPool
from training_agent.status.state import AgentState
from training_agent.supervise import supervise

log = logging.getLogger(__name__)

AGENT_STOPPED = "agent stopped"

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class JobOptions:
    """What running one job needs from the settings."""

    allow_command_jobs: bool
    cancel_grace_s: float
    training_python: str | None = None
    heartbeat_interval_s: float = 10.0
    upload_artifacts: bool = True
    max_artifact_bytes: int | None = None
    policy: JobPolicy = field(default_factory=JobPolicy)  # what a job config may do here


@dataclass
class JobSlot:
    """One job between its claim and its end."""

    job: ClaimedJob
    reports: JobReports
    runner: JobRunner
    control: JobControl
    journal: JobJournal | None  # None when the job id cannot name a directory


class JobSlots:
    """Runs jobs, one slot each, and routes requests to the slot of their job."""

    def __init__(
        self,
        *,
        client: BackendClient,
        outbox: Outbox,
        state: AgentState,
        options: JobOptions,
        jobs_dir: Path,
        journals_dir: Path,
        gpus: GpuPool,
        datasets: DatasetFetcher,
        features: Callable[[], frozenset[str]],
        wake_uploader: Callable[[], None],
        wake_artifacts: Callable[[], None] = lambda: None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """``features()`` is the backend's extensions as the poller last heard them;
        ``wake_uploader()`` says new reports wait in the outbox, ``wake_artifacts()``
        that uploads of a job's outputs do."""
        self._client = client
        self._outbox = outbox
        self._state = state
        self._options = options
        self._jobs_dir = jobs_dir
        self._journals_dir = journals_dir
        self._gpus = gpus
        self._datasets = datasets
        self._features = features
        self._wake_uploader = wake_uploader
        self._wake_artifacts = wake_artifacts
        self._sleep = sleep
        self._running: dict[str, JobSlot] = {}
        self._journals: dict[str, JobJournal] = {}  # finished jobs until delivered
        self._cancel_all: str | None = None  # once set, every job is cancelled with it

    def busy_gpus(self) -> frozenset[str]:
        """The GPUs this agent's running jobs hold (for ``X-Agent-Info``)."""
        return self._gpus.busy()

    def has_free_gpus(self) -> bool:
        """Whether a new job would get its share of the GPUs now."""
        return self._gpus.has_free_share()

    async def run(self, job: ClaimedJob) -> None:
        """Run ``job`` to its end and put its end in the outbox."""
        slot = self._start(job)
        watch = asyncio.create_task(
            supervise(f"the heartbeat of job {job.id}", slot.control.watch, sleep=self._sleep),
            name=f"control-{job.id}",
        )
        try:
            outcome = await _execute(slot.runner)
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
            self._running.pop(job.id, None)
            self._gpus.release(job.id)
        self._finish(slot, outcome)
        heap.give_back()  # what the job's reports and bodies used, back to the system

    def cancel(self, job_id: str, reason: str) -> bool:
        """Cancel a running job with the kill ladder; False when it does not run here."""
        slot = self._running.get(job_id)
        if slot is None:
            return False
        slot.runner.request_cancel(reason)
        slot.reports.cancelling(reason)
        return True

    def cancel_all(self, reason: str) -> None:
        """Cancel every running job, and every job started from now on."""
        self._cancel_all = reason
        for slot in self._running.values():
            slot.runner.request_cancel(reason)

    # -- what the uploader says ---------------------------------------------------------

    def on_control(self, job_id: str, control: str) -> None:
        """A report's answer carried ``control`` for the job."""
        if slot := self._running.get(job_id):
            slot.control.apply(control)

    def on_gone(self, job_id: str, exc: HttpStatusError) -> None:
        """The backend refuses the job's reports for good."""
        if slot := self._running.get(job_id):
            slot.control.lose(f"{gone_reason(exc)}: {exc}")

    def on_delivered(self, job_id: str) -> None:
        """The job's last report went out: its journal is no longer needed."""
        if journal := self._journals.pop(job_id, None):
            journal.remove()

    # -- one job ------------------------------------------------------------------------

    def _start(self, job: ClaimedJob) -> JobSlot:
        self._outbox.open_job(job.id, job.job_token)
        journal = self._journal(job.id)
        if journal is not None:
            journal.start()
        reports = JobReports(self._outbox, self._state, job.id, wake=self._wake_uploader)
        reports.started(model_name=job.model_name)
        gpu = self._gpus.acquire(job.id)
        runner = JobRunner(
            job=job,
            jobs_dir=self._jobs_dir,
            sink=reports,
            allow_command_jobs=self._options.allow_command_jobs,
            cancel_grace_s=self._options.cancel_grace_s,
            training_python=self._options.training_python,
            extra_env={CUDA_VISIBLE_DEVICES: gpu} if gpu is not None else None,
            on_started=journal.started if journal is not None else None,
            on_status=lambda status: _trainer_status(job.id, reports, status),
            datasets=self._datasets,
            policy=self._options.policy,
        )
        control = JobControl(
            job=job,
            runner=runner,
            client=self._client,
            features=self._features,
            interval_s=self._options.heartbeat_interval_s,
            sleep=self._sleep,
            on_lost=lambda _job_id: _abandon(reports),
        )
        slot = JobSlot(job, reports, runner, control, journal)
        self._running[job.id] = slot
        if self._cancel_all is not None:
            runner.request_cancel(self._cancel_all)
        return slot

    def _finish(self, slot: JobSlot, outcome: JobOutcome) -> None:
        job_id = slot.job.id
        lost = slot.control.lost
        if lost is not None:
            slot.reports.lost(lost)  # whatever is left can never be delivered
            if slot.journal is not None:
                slot.journal.finish(JournalStatus.LOST)
                slot.journal.remove()
            log.warning("job %s stopped: %s", job_id, lost)
            return
        outcome = _as_reported(outcome)
        slot.reports.ended(outcome, outputs=self._plan_uploads(slot, outcome))
        if slot.journal is not None:
            slot.journal.finish(JournalStatus(outcome.status))  # removed once delivered
            self._journals[job_id] = slot.journal
        reason = f": {outcome.reason}" if outcome.reason else ""
        log.info("job %s %s%s", job_id, outcome.status.value, reason)

    def _plan_uploads(self, slot: JobSlot, outcome: JobOutcome) -> list[Any] | None:
        """Store the uploads of a completed job's outputs (``artifacts``) before its end;
        the terminal status's ``outputs`` for that backend (None: the paths, as in v1)."""
        if "artifacts" not in self._features() or not outcome.declared:
            return None
        outputs = [_output_entry(output) for output in outcome.declared]
        if outcome.status is not JobStatus.COMPLETED:
            return outputs
        if not self._options.upload_artifacts:
            slot.reports.log(f"[training-agent] {UPLOADS_OFF}")
            return outputs
        plan = plan_uploads(
            outcome.declared,
            config=slot.job.config,
            work_dir=self._jobs_dir / slot.job.id,
            max_bytes=self._options.max_artifact_bytes,
        )
        for note in plan.notes:
            slot.reports.log(f"[training-agent] {note}")
        if plan.uploads:
            try:
                self._outbox.artifacts.add(slot.job.id, plan.uploads)
            except StateError as exc:
                log.error("job %s: cannot store its uploads: %s", slot.job.id, exc)
            self._wake_artifacts()
        return outputs

    def _journal(self, job_id: str) -> JobJournal | None:
        try:
            return JobJournal(self._journals_dir, job_id)
        except StateError as exc:
            log.warning("job %s: no journal: %s", job_id, exc)
            return None


async def _execute(runner: JobRunner) -> JobOutcome:
    try:
        return await runner.run()
    except Exception as exc:  # a bug in the agent must not leave the job "running"
        log.exception("the agent failed while running a job")
        return JobOutcome(JobStatus.FAILED, reason=f"internal error in the agent: {exc!r}")


def _as_reported(outcome: JobOutcome) -> JobOutcome:
    # A job the agent cancelled because it was stopped did not fail of its own accord,
    # but it did not finish either: "failed" lets the user retry it.
    if outcome.status is JobStatus.CANCELLED and outcome.reason == AGENT_STOPPED:
        return dataclasses.replace(outcome, status=JobStatus.FAILED, reason=AGENT_STOPPED)
    return outcome


UPLOADS_OFF = (
    "outputs are not uploaded: upload_artifacts is off on this machine; they stay in the "
    "job's work directory"
)


def _output_entry(output: JobOutput) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": output.path, "kind": output.kind.value}
    if output.name:
        entry["name"] = output.name
    return entry


def _trainer_status(job_id: str, reports: JobReports, status: JobStatus) -> None:
    reports.status(status)
    log.info("job %s %s", job_id, "paused" if status is JobStatus.PAUSED else "resumed")


def _abandon(reports: JobReports) -> None:
    # The backend gave the job up: not even the lines of its last seconds go out.
    reports.abandon()
    reports.cancelling(LEASE_LOST)
