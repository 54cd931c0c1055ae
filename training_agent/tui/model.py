"""What the dashboard knows about the agent: the last snapshot, each job's chart points and
log lines, the machine's load. Plain data, updated by the app's workers, read by widgets.

``apply`` folds one status-API event in and says whether anything visible changed. Points
are keyed by step and log lines by their number, so the history fetched at attach time
and the live events that overlap it never show anything twice.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from training_agent.status.client import StatusEvent

LOG_LINES_KEPT = 2000  # per job, like the agent's own tail (state.LOG_TAIL_LINES)
CHART_POINTS_KEPT = 2000  # per job; the agent thins its history to 500


class Attach(enum.Enum):
    """The dashboard's link to the agent's status API (not the agent's link to the backend)."""

    CONNECTING = "connecting"  # looking for status.json / opening the event stream
    ATTACHED = "attached"  # the event stream is open
    NO_AGENT = "no agent"  # no status.json, its process is gone, or nothing listens
    LOST = "lost"  # the stream broke or the agent refused; retrying


@dataclass
class JobLog:
    """A job's last lines, numbered from 0 like the agent's log stream."""

    lines: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES_KEPT))
    total: int = 0  # number of the next line

    def add(self, first_line: int | None, lines: list[str]) -> list[str]:
        """Append what is new of ``lines`` (numbered from ``first_line``); the new lines."""
        if first_line is not None:
            lines = lines[max(0, self.total - first_line) :]
            self.total = max(self.total, first_line)
        self.lines.extend(lines)
        self.total += len(lines)
        return lines


@dataclass
class DashboardModel:
    attach: Attach = Attach.CONNECTING
    attach_reason: str | None = None
    snapshot: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    points: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    logs: dict[str, JobLog] = field(default_factory=dict)
    received_at: float = 0.0  # our clock when the snapshot came

    def apply(self, event: StatusEvent) -> None:
        data = event.data
        if event.name == "status" and isinstance(data, dict):
            self.snapshot = data
        elif event.name == "metrics" and isinstance(data, dict):
            self.add_points(str(data["job_id"]), list(data.get("points") or []))
        elif event.name == "log" and isinstance(data, dict):
            self.log(str(data["job_id"])).add(data.get("first_line"), list(data["lines"]))

    def add_points(self, job_id: str, points: list[dict[str, Any]]) -> None:
        known = self.points.setdefault(job_id, {})
        for point in points:
            if isinstance(point.get("step"), int):
                known.setdefault(point["step"], {}).update(point)
        while len(known) > CHART_POINTS_KEPT:
            del known[min(known)]

    def log(self, job_id: str) -> JobLog:
        return self.logs.setdefault(job_id, JobLog())

    def series(self, job_id: str, key: str) -> list[tuple[int, float]]:
        """(step, value) of ``key`` for a chart, in step order."""
        known = self.points.get(job_id, {})
        return [
            (step, float(point[key]))
            for step, point in sorted(known.items())
            if isinstance(point.get(key), int | float)
        ]

    def jobs(self) -> list[dict[str, Any]]:
        """Running jobs, then recent ones (newest first)."""
        if self.snapshot is None:
            return []
        return [*self.snapshot.get("jobs", []), *self.snapshot.get("recent_jobs", [])]

    def job(self, job_id: str | None) -> dict[str, Any] | None:
        return next((job for job in self.jobs() if job["id"] == job_id), None)

    def running_ids(self) -> set[str]:
        return {job["id"] for job in (self.snapshot or {}).get("jobs", [])}
