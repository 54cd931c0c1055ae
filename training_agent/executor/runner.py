"""One job's lifecycle, from its config to a ``JobOutcome``.

``JobRunner.run()`` plans the launch, prepares the work dir, starts the trainer, pumps
its stdout and stderr into the job log, follows its events file, and waits. Exit 0 is
``completed``; anything else is ``failed`` with the exit code or signal and the last
lines of stderr; a requested cancel walks the kill ladder and ends ``cancelled``. A job
that cannot start is a ``failed`` outcome with a sentence saying why: ``run()`` raises
nothing but ``asyncio.CancelledError``, and kills the trainer's tree before it does.

Pause and resume need the trainer's help (rejected: SIGSTOP, which would freeze a
trainer holding GPU memory and NCCL connections until timeouts kill it). A trainer that
can pause says so once in its events file, ``{"type": "capabilities", "pause": true}``
(``report.capabilities(pause=True)``). ``request_pause`` then writes
``{"action": "pause"}`` to ``$TRAINING_AGENT_CONTROL_FILE`` (atomically) and sends
SIGUSR1 to the trainer's leader process (POSIX; elsewhere the trainer polls the file).
The trainer pauses at a safe point and appends ``{"type": "paused"}``; the agent reports
``paused`` only then. ``request_resume`` writes ``{"action": "resume"}`` the same way,
and ``{"type": "resumed"}`` is reported as ``running``. A trainer that did not declare
the capability keeps running, and its job log says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path

from training_agent.errors import JobConfigError, StateError
from training_agent.executor.config_checks import check_config
from training_agent.executor.dataset import DatasetFetcher, dataset_env, with_dataset
from training_agent.executor.events import EventFollower, EventReader
from training_agent.executor.plan import plan_launch
from training_agent.executor.process import ChildProcess, kill_tracked
from training_agent.executor.workspace import Workspace
from training_agent.job_policy import POLICY_ENV, JobPolicy
from training_agent.jobs import ClaimedJob, JobOutcome, JobOutput, JobSink, JobStatus

log = logging.getLogger(__name__)

PAUSE_UNSUPPORTED = (
    "pause requested, but this trainer does not support pausing (it did not declare "
    '{"type": "capabilities", "pause": true} in its events file); the job keeps running'
)
STDERR_TAIL_LINES = 20
MAX_REASON_CHARS = 2000
# After an asyncio cancellation killed the tree: how long to wait for the exit.
REAP_S = 2.0


class JobRunner:
    """Runs one claimed job once. ``request_cancel`` may come before, during or after ``run``."""

    def __init__(
        self,
        *,
        job: ClaimedJob,
        jobs_dir: Path,
        sink: JobSink,
        allow_command_jobs: bool,
        cancel_grace_s: float,
        training_python: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        on_started: Callable[[int, str], None] | None = None,
        on_status: Callable[[JobStatus], None] | None = None,
        datasets: DatasetFetcher | None = None,
        policy: JobPolicy | None = None,
    ) -> None:
        """``extra_env`` is set for the trainer last (``CUDA_VISIBLE_DEVICES``);
        ``datasets`` fetches the job's backend-held dataset before it starts (None: the
        backend does not offer ``dataset_download``; the job uses its ``dataset_path``);
        ``on_started(pid, tracking_id)`` is called once the trainer runs;
        ``on_status`` gets ``paused`` and ``running`` when the trainer pauses or resumes;
        ``policy`` is what the owner lets a job config do (default: the strictest): its
        config is checked against it, and the trainer gets it in ``$TRAINING_AGENT_JOB_POLICY``.
        """
        self._extra_env = dict(extra_env or {})
        self._on_started = on_started
        self._on_status = on_status
        self._child: ChildProcess | None = None
        self._workspace: Workspace | None = None
        self._reader: EventReader | None = None
        self._follower: EventFollower | None = None
        self._job = job
        self._jobs_dir = jobs_dir
        self._sink = sink
        self._allow_command_jobs = allow_command_jobs
        self._cancel_grace_s = cancel_grace_s
        self._training_python = training_python
        self._cancel_reason: str | None = None
        self._cancel_requested = asyncio.Event()
        self._stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._ran = False
        self._datasets = datasets
        self._policy = policy or JobPolicy()

    def request_cancel(self, reason: str) -> None:
        """Stop the job: SIGTERM, ``cancel_grace_s``, then kill. The first reason is kept.

        Call it from the event loop's thread; after ``run()`` returned it does nothing.
        """
        if self._cancel_reason is None:
            self._cancel_reason = reason
        self._cancel_requested.set()

    def request_pause(self) -> bool:
        """Ask the trainer to pause; False (with a job log line why) when it cannot."""
        return self._ask("pause")

    def request_resume(self) -> bool:
        """Ask a paused trainer to go on; False when it cannot be asked."""
        return self._ask("resume")

    def _ask(self, action: str) -> bool:
        child, reader, workspace = self._child, self._reader, self._workspace
        if child is None or reader is None or workspace is None or self._follower is None:
            return False  # not started, or already over
        if child.returncode is not None or self._cancel_requested.is_set():
            return False
        self._follower.read_new()  # a capability declared a moment ago counts
        if not reader.capabilities.get("pause"):
            if action == "pause":
                self._sink.log(PAUSE_UNSUPPORTED)
            return False
        try:
            _write_atomically(workspace.control_file, json.dumps({"action": action}) + "\n")
        except OSError as exc:
            log.warning("job %s: cannot ask the trainer to %s: %s", self._job.id, action, exc)
            return False
        child.notify()
        log.info("job %s: asked the trainer to %s", self._job.id, action)
        return True

    def _trainer_state(self, kind: str) -> None:
        if self._on_status is not None:
            self._on_status(JobStatus.PAUSED if kind == "paused" else JobStatus.RUNNING)

    async def run(self) -> JobOutcome:
        """Run the job to its end and say how it ended. May be called once."""
        if self._ran:
            raise RuntimeError("JobRunner.run() may be called only once")
        self._ran = True
        if self._cancel_reason is not None:
            return self._finish(JobOutcome(JobStatus.CANCELLED, reason=self._cancel_reason))
        try:
            workspace, child = await self._launch()
        except _CancelledBeforeStart:
            return self._finish(JobOutcome(JobStatus.CANCELLED, reason=self._cancel_reason))
        except (JobConfigError, StateError) as exc:
            log.warning("job %s cannot start: %s", self._job.id, exc)
            self._sink.log(str(exc))
            return self._finish(JobOutcome(JobStatus.FAILED, reason=str(exc)))
        log.info("job %s started pid=%d", self._job.id, child.pid)
        return self._finish(await self._supervise(workspace, child))

    async def _launch(self) -> tuple[Workspace, ChildProcess]:
        workspace = Workspace.for_job(self._jobs_dir, self._job.id)
        plan = plan_launch(
            self._job.config,
            config_file=workspace.config_file,
            allow_command_jobs=self._allow_command_jobs,
            training_python=self._training_python,
        )
        local = await self._dataset()
        cache = self._datasets.cache if self._datasets is not None else None
        config = with_dataset(self._job.config, self._job, local)
        cache_dir = cache.root if cache is not None else None
        await check_config(config, job_dir=workspace.dir, cache_dir=cache_dir, policy=self._policy)
        policy_env = {POLICY_ENV: self._policy.to_env()}
        assigned = {**dataset_env(local, cache), **policy_env, **self._extra_env}
        env = workspace.child_env(os.environ, plan.env, assigned)
        workspace.create(config)
        child = await ChildProcess.start(
            plan.argv, cwd=workspace.dir, env=env, on_line=self._on_line
        )
        if self._on_started is not None:
            self._on_started(child.pid, child.tracking_id)
        return workspace, child

    async def _dataset(self) -> Path | None:
        """The job's backend-held dataset on local disk, unless a cancel comes first."""
        if self._datasets is None or self._job.dataset is None:
            return None
        self._sink.log(f"fetching the dataset {self._job.dataset.filename} from the backend")
        fetch = asyncio.create_task(self._datasets.fetch(self._job))
        cancel = asyncio.create_task(self._cancel_requested.wait())
        try:
            await asyncio.wait({fetch, cancel}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (fetch, cancel):
                task.cancel()
        if not fetch.done() or fetch.cancelled():
            with contextlib.suppress(asyncio.CancelledError):
                await fetch  # let the download remove its partial file
            raise _CancelledBeforeStart
        return fetch.result()

    async def _supervise(self, workspace: Workspace, child: ChildProcess) -> JobOutcome:
        """Wait for the child, cancelling it on request; always sweep its leftovers."""
        reader = EventReader(self._sink, base_dir=workspace.dir, on_state=self._trainer_state)
        follower = EventFollower(workspace.events_file, reader)
        self._child, self._workspace = child, workspace
        self._reader, self._follower = reader, follower
        try:
            returncode, cancelled = await self._wait_or_cancel(child, follower)
        except asyncio.CancelledError:
            log.warning("job %s interrupted, killing its processes", self._job.id)
            child.kill_tree()
            await child.reap(REAP_S)
            raise
        except Exception as exc:  # a bug here must not leave a trainer running unseen
            log.exception("job %s: the agent failed while running it", self._job.id)
            child.kill_tree()
            await child.reap(REAP_S)
            return JobOutcome(JobStatus.FAILED, reason=f"the agent failed while running it: {exc}")
        finally:
            self._child = self._workspace = self._reader = self._follower = None
        leftovers = kill_tracked(child.tracking_id)
        if leftovers:
            log.info("job %s: killed %d leftover processes", self._job.id, len(leftovers))
        follower.read_new(final=True)
        return self._outcome(returncode, cancelled, reader.declared)

    async def _wait_or_cancel(
        self, child: ChildProcess, follower: EventFollower
    ) -> tuple[int, bool]:
        """The child's returncode, and whether a cancel request stopped it."""
        follow = asyncio.create_task(follower.follow())
        exited = asyncio.create_task(child.wait())
        cancel = asyncio.create_task(self._cancel_requested.wait())
        try:
            await asyncio.wait({exited, cancel}, return_when=asyncio.FIRST_COMPLETED)
            if exited.done():
                return exited.result(), False
            log.info("job %s cancelling: %s", self._job.id, self._cancel_reason)
            return await child.stop(self._cancel_grace_s), True
        finally:
            for task in (follow, exited, cancel):
                task.cancel()

    def _outcome(
        self, returncode: int, cancelled: bool, declared: tuple[JobOutput, ...]
    ) -> JobOutcome:
        exit_code = returncode if returncode >= 0 else None
        signum = -returncode if returncode < 0 else None
        if cancelled:
            status, reason = JobStatus.CANCELLED, self._cancel_reason
        elif returncode == 0:
            status, reason = JobStatus.COMPLETED, None
        else:
            status, reason = JobStatus.FAILED, self._failure_reason(exit_code, signum)
        outputs = tuple(output.path for output in declared)
        return JobOutcome(status, exit_code, signum, reason, outputs, declared)

    def _failure_reason(self, exit_code: int | None, signum: int | None) -> str:
        if signum is None:
            head = f"exit code {exit_code}"
        else:
            head = f"killed by signal {_signal_name(signum)}"
            if signum == getattr(signal, "SIGKILL", None):
                head += " (the system may have run out of memory)"
        tail = "\n".join(self._stderr_tail)
        if not tail:
            return head
        room = MAX_REASON_CHARS - len(head) - 2
        if len(tail) > room:
            tail = "…" + tail[-(room - 1) :]  # the last lines say most about a crash
        return f"{head}: {tail}"

    def _on_line(self, stream: str, line: str) -> None:
        self._sink.log(line)
        if stream == "stderr" and line.strip():
            self._stderr_tail.append(line)

    def _finish(self, outcome: JobOutcome) -> JobOutcome:
        log.info(
            "job %s finished status=%s exit_code=%s",
            self._job.id,
            outcome.status.value,
            outcome.exit_code,
        )
        return outcome


class _CancelledBeforeStart(Exception):
    """A cancel arrived while the job was still being prepared."""


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` so that a reader sees the old file or the new one, never half."""
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def _signal_name(signum: int) -> str:
    try:
        return f"{signal.Signals(signum).name} ({signum})"
    except ValueError:
        return str(signum)
