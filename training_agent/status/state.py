"""What the agent is doing right now, for the status API, ``status`` and the dashboard.

The daemon, poller and job runners *report* into one ``AgentState`` (plain method calls
from the event loop's thread, no I/O, never raising); readers take ``snapshot()`` (a
JSON-ready dict) or ``watch()`` the changes:

    with state.watch() as watcher:
        while True:
            changes = await watcher.next()   # everything since the last call, coalesced
            send(state.snapshot(), changes.points, changes.lines)

Nothing secret ever enters the state: it is served to any local reader holding the
status token, and the dashboard shows all of it.
"""

from __future__ import annotations

import enum
import os
import time
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from training_agent.status.uploads import UploadBoard
from training_agent.status.watch import WATCH_BACKLOG, Watcher

RECENT_JOBS = 20
HISTORY_POINTS = 500  # metric points kept per job for a chart (thinned evenly past that)
LOG_TAIL_LINES = 2000  # log lines kept per job (the dashboard's log view)
KEPT_JOB_DETAILS = 5  # finished jobs whose history and log tail are still served

SNAPSHOT_VERSION = 1


class JobViewStatus(enum.StrEnum):
    """A job's status as this agent shows it: the wire statuses it runs through, plus
    ``cancelling``."""

    RUNNING = "running"  # the trainer runs
    CANCELLING = "cancelling"  # the kill ladder is under way (a cancel, a stop, a lost lease)
    PAUSED = "paused"  # the trainer paused at the user's request
    COMPLETED = "completed"  # the trainer exited 0
    FAILED = "failed"  # the trainer failed, the agent could not run it, or the job was lost
    CANCELLED = "cancelled"  # stopped on request


@dataclass
class JobView:
    """One job as the agent sees it."""

    id: str
    model_name: str | None
    status: JobViewStatus
    started_at: float
    finished_at: float | None = None
    total_steps: int | None = None
    total_epochs: float | None = None
    step: int | None = None
    epoch: float | None = None
    last_metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    log_lines: int = 0  # lines the job printed so far

    def to_dict(self, now: float) -> dict[str, Any]:
        data = asdict(self)
        end = self.finished_at if self.finished_at is not None else now
        data["elapsed_s"] = max(0.0, end - self.started_at)
        data["progress"] = (
            min(1.0, self.step / self.total_steps)
            if self.step is not None and self.total_steps
            else None
        )
        data["eta_s"] = self._eta_s(now) if self.finished_at is None else None
        return data

    def _eta_s(self, now: float) -> float | None:
        """Linear: the time per step so far times the steps left."""
        if not self.step or not self.total_steps or self.step >= self.total_steps:
            return None
        return (now - self.started_at) / self.step * (self.total_steps - self.step)


@dataclass
class ConnectionView:
    """The link to the backend, as the poller last saw it."""

    state: str = "starting"  # starting | connected | unreachable | rejected | refused | revoked
    reason: str | None = None
    next_retry_at: float | None = None
    last_poll_at: float | None = None
    last_poll_latency_s: float | None = None
    features: list[str] = field(default_factory=list)
    long_poll: bool = False  # long-polling: the poll in flight (or the last one) is held
    poll_started_at: float | None = None  # when the poll in flight began; None between polls


class Controller(Protocol):
    """What the status API may ask of the daemon."""

    def drain(self) -> None: ...

    def resume(self) -> None: ...

    def cancel_job(self, job_id: str, reason: str) -> bool: ...


class MetricHistory:
    """A job's metric points for a chart: all of them up to ``limit``, then evenly thinned.

    When full, every other point is dropped and from then on only every 2nd (4th, ...)
    new point is kept, so the history always spans the whole run at an even density.
    """

    def __init__(self, limit: int = HISTORY_POINTS) -> None:
        self._limit = max(2, limit)
        self._every = 1
        self._seen = 0
        self.points: list[dict[str, Any]] = []

    def add(self, point: Mapping[str, Any]) -> None:
        self._seen += 1
        if (self._seen - 1) % self._every:
            return
        self.points.append(dict(point))
        if len(self.points) >= self._limit:
            self.points = self.points[::2]
            self._every *= 2


class LogTail:
    """The last lines of a job's log, numbered from 0 like the job's log stream."""

    def __init__(self, limit: int = LOG_TAIL_LINES) -> None:
        self.lines: deque[str] = deque(maxlen=limit)
        self.total = 0

    def add(self, line: str) -> None:
        self.lines.append(line)
        self.total += 1

    @property
    def first_line(self) -> int:
        return self.total - len(self.lines)


class AgentState:
    """The live state of one agent; every report call notifies the watchers."""

    def __init__(self, *, agent_id: str, version: str, backend_url: str) -> None:
        self.agent_id = agent_id
        self.version = version
        self.backend_url = backend_url
        self.started_at = time.time()
        self.connection = ConnectionView()
        self.draining = False
        self.jobs: dict[str, JobView] = {}
        self.recent: deque[JobView] = deque(maxlen=RECENT_JOBS)
        self.resources: dict[str, Any] = {}
        self.problems: dict[str, str] = {}  # what fails inside the agent now, by part
        # Counters since the agent started, for /metrics.
        self.polls_total = 0
        self.poll_errors_total = 0
        self.jobs_finished: Counter[str] = Counter()
        self._histories: OrderedDict[str, MetricHistory] = OrderedDict()
        self._logs: OrderedDict[str, LogTail] = OrderedDict()
        self._watchers: set[Watcher] = set()
        self.uploads = UploadBoard(on_change=lambda: self._changed("upload"))

    # -- reports ------------------------------------------------------------------------

    def poll_started(self, *, long_poll: bool) -> None:
        """A poll went out; ``long_poll`` when the server may hold it (up to 30 s)."""
        self.connection.long_poll = long_poll
        self.connection.poll_started_at = time.time()
        self._changed("connection")

    def poll_succeeded(
        self, *, latency_s: float, features: frozenset[str], long_poll: bool = False
    ) -> None:
        self.polls_total += 1
        self.connection = ConnectionView(
            state="connected",
            last_poll_at=time.time(),
            last_poll_latency_s=latency_s,
            features=sorted(features),
            long_poll=long_poll,
        )
        self._changed("connection")

    def poll_failed(self, *, state: str, reason: str, retry_in_s: float | None) -> None:
        self.polls_total += 1
        self.poll_errors_total += 1
        self.connection.state = state
        self.connection.reason = reason
        self.connection.next_retry_at = None if retry_in_s is None else time.time() + retry_in_s
        self.connection.long_poll = False
        self.connection.poll_started_at = None
        self._changed("connection")

    def set_draining(self, draining: bool) -> None:
        self.draining = draining
        self._changed("agent")

    def set_resources(self, resources: Mapping[str, Any]) -> None:
        """The machine's resources as last sampled (JSON-ready; see docs/operations.md)."""
        self.resources = dict(resources)
        self._changed("agent")

    def set_problem(self, part: str, sentence: str | None) -> None:
        """``part`` of the agent fails (a sentence) or works again (None)."""
        if sentence is None:
            self.problems.pop(part, None)
        else:
            self.problems[part] = sentence
        self._changed("agent")

    def job_started(self, job_id: str, *, model_name: str | None) -> None:
        self.jobs[job_id] = JobView(job_id, model_name, JobViewStatus.RUNNING, time.time())
        self._keep(self._histories, job_id, MetricHistory())
        self._keep(self._logs, job_id, LogTail())
        self._changed("job")

    def job_status(self, job_id: str, status: JobViewStatus, *, reason: str | None = None) -> None:
        """A running job's status changed (``cancelling``, ``paused``, ``running``)."""
        if view := self.jobs.get(job_id):
            view.status = status
            view.error = reason if reason is not None else view.error
            self._changed("job")

    def job_progress(
        self, job_id: str, *, total_steps: int | None, total_epochs: float | None
    ) -> None:
        if view := self.jobs.get(job_id):
            view.total_steps = total_steps if total_steps is not None else view.total_steps
            view.total_epochs = total_epochs if total_epochs is not None else view.total_epochs
            self._changed("job")

    def job_metric(self, job_id: str, point: dict[str, Any]) -> None:
        if view := self.jobs.get(job_id):
            view.step = point.get("step", view.step)
            view.epoch = point.get("epoch", view.epoch)
            view.last_metrics.update(point)
            if history := self._histories.get(job_id):
                history.add(point)
            self._changed("metric", job_id, point=dict(point))

    def job_log(self, job_id: str, line: str) -> None:
        if (view := self.jobs.get(job_id)) and (tail := self._logs.get(job_id)):
            tail.add(line)
            view.log_lines = tail.total
            self._changed("log", job_id, line=line)

    def job_finished(self, job_id: str, *, status: JobViewStatus, error: str | None) -> None:
        if view := self.jobs.pop(job_id, None):
            view.status, view.error, view.finished_at = status, error, time.time()
            self.recent.appendleft(view)
            self.jobs_finished[status.value] += 1
            self._changed("job")

    # -- readers ------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything above as JSON-ready data (times are Unix seconds).

        ``jobs[]`` and ``recent_jobs[]`` carry ``elapsed_s``, ``progress`` (0-1 or null)
        and ``eta_s`` besides the ``JobView`` fields.
        """
        now = time.time()
        return {
            "snapshot_version": SNAPSHOT_VERSION,
            "now": now,
            "agent_id": self.agent_id,
            "pid": os.getpid(),
            "version": self.version,
            "backend_url": self.backend_url,
            "started_at": self.started_at,
            "draining": self.draining,
            "connection": asdict(self.connection),
            "jobs": [view.to_dict(now) for view in self.jobs.values()],
            "recent_jobs": [view.to_dict(now) for view in self.recent],
            "uploads": self.uploads.snapshot(),
            "resources": dict(self.resources),
            "problems": dict(self.problems),
            "counters": {
                "polls": self.polls_total,
                "poll_errors": self.poll_errors_total,
                "jobs_finished": dict(self.jobs_finished),
            },
        }

    def job(self, job_id: str) -> JobView | None:
        """A running or recent job, or None."""
        return self.jobs.get(job_id) or next((v for v in self.recent if v.id == job_id), None)

    def history(self, job_id: str) -> list[dict[str, Any]] | None:
        """The job's metric points for a chart (see ``MetricHistory``), or None."""
        history = self._histories.get(job_id)
        return None if history is None else list(history.points)

    def log_tail(self, job_id: str, lines: int = LOG_TAIL_LINES) -> tuple[int, list[str]] | None:
        """(number of the first line returned, the last ``lines`` lines), or None."""
        tail = self._logs.get(job_id)
        if tail is None:
            return None
        kept = list(tail.lines)[-lines:] if lines > 0 else []
        return tail.total - len(kept), kept

    @contextmanager
    def watch(self, backlog: int = WATCH_BACKLOG) -> Iterator[Watcher]:
        """A ``Watcher`` that collects every change until the block ends."""
        watcher = Watcher(backlog)
        self._watchers.add(watcher)
        try:
            yield watcher
        finally:
            self._watchers.discard(watcher)

    async def subscribe(self) -> AsyncIterator[str]:
        """The kind of each change as it happens ("connection", "job", "metric", "agent", "log")."""
        with self.watch() as watcher:
            while True:
                for kind in sorted((await watcher.next()).kinds):
                    yield kind

    def _changed(
        self, kind: str, job_id: str | None = None, *, point: Any = None, line: Any = None
    ) -> None:
        for watcher in self._watchers:
            watcher.record(kind, job_id, point=point, line=line)

    def _keep(self, store: OrderedDict[str, Any], job_id: str, value: Any) -> None:
        """Add a job's details, forgetting the oldest finished job's beyond the limit."""
        store[job_id] = value
        finished = [key for key in store if key not in self.jobs and key != job_id]
        for key in finished[: max(0, len(finished) - KEPT_JOB_DETAILS)]:
            del store[key]
