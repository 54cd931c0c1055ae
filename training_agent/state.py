"""What the agent is doing right now, for the status API, ``status`` and the dashboard.

The daemon, poller and job runners *report* into one ``AgentState`` (plain method calls,
no I/O); readers take ``snapshot()`` (a JSON-ready dict) or ``subscribe()`` to changes.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

RECENT_JOBS = 20


@dataclass
class JobView:
    """One job as the agent sees it."""

    id: str
    model_name: str | None
    status: str  # running | cancelling | completed | failed | cancelled
    started_at: float
    finished_at: float | None = None
    total_steps: int | None = None
    total_epochs: float | None = None
    step: int | None = None
    epoch: float | None = None
    last_metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class ConnectionView:
    """The link to the backend, as the poller last saw it."""

    state: str = "starting"  # poller.Connection values, plus "revoked"
    reason: str | None = None
    next_retry_at: float | None = None
    last_poll_at: float | None = None
    last_poll_latency_s: float | None = None
    features: list[str] = field(default_factory=list)


class Controller(Protocol):
    """What the status API may ask of the daemon."""

    def drain(self) -> None: ...

    def resume(self) -> None: ...

    def cancel_job(self, job_id: str, reason: str) -> bool: ...


class AgentState:
    """The live state of one agent; every ``job_*``/``poll_*`` call notifies subscribers."""

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
        self._subscribers: set[asyncio.Queue[str]] = set()

    # -- reports ------------------------------------------------------------------------

    def poll_succeeded(self, *, latency_s: float, features: frozenset[str]) -> None:
        self.connection = ConnectionView(
            state="connected",
            last_poll_at=time.time(),
            last_poll_latency_s=latency_s,
            features=sorted(features),
        )
        self._changed("connection")

    def poll_failed(self, *, state: str, reason: str, retry_in_s: float | None) -> None:
        self.connection.state = state
        self.connection.reason = reason
        self.connection.next_retry_at = None if retry_in_s is None else time.time() + retry_in_s
        self._changed("connection")

    def set_draining(self, draining: bool) -> None:
        self.draining = draining
        self._changed("agent")

    def job_started(self, job_id: str, *, model_name: str | None) -> None:
        self.jobs[job_id] = JobView(job_id, model_name, "running", time.time())
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
            self._changed("metric")

    def job_finished(self, job_id: str, *, status: str, error: str | None) -> None:
        if view := self.jobs.pop(job_id, None):
            view.status, view.error, view.finished_at = status, error, time.time()
            self.recent.appendleft(view)
            self._changed("job")

    # -- readers ------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything above as JSON-ready data (times are Unix seconds)."""
        return {
            "agent_id": self.agent_id,
            "version": self.version,
            "backend_url": self.backend_url,
            "started_at": self.started_at,
            "draining": self.draining,
            "connection": asdict(self.connection),
            "jobs": [asdict(view) for view in self.jobs.values()],
            "recent_jobs": [asdict(view) for view in self.recent],
            "resources": dict(self.resources),
        }

    async def subscribe(self) -> AsyncIterator[str]:
        """The kind of each change as it happens ("connection", "job", "metric", "agent")."""
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1000)
        self._subscribers.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)

    def _changed(self, kind: str) -> None:
        for queue in self._subscribers:
            if not queue.full():  # a slow reader loses events, never the agent
                queue.put_nowait(kind)
