"""A fake status source for the dashboard: fixed snapshots, scripted events, a fixed clock."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

from training_agent.errors import AgentNotRunningError, StatusApiError
from training_agent.status.client import StatusEvent

NOW = 1_750_000_000.0
AGENT_ID = "agent_3f2a9c0d1e4b5a6f"
JOB_ID = "7c1e4d2a-90b1-4c55-8d0e-2f6a1b3c4d5e"


def clock() -> float:
    return NOW


def _connection(**overrides: Any) -> dict[str, Any]:
    return {
        "state": "connected",
        "reason": None,
        "next_retry_at": None,
        "last_poll_at": NOW - 3,
        "last_poll_latency_s": 0.012,
        "features": ["heartbeat", "long_poll"],
        "long_poll": True,
        "poll_started_at": NOW - 3,
        **overrides,
    }


def running_job(**overrides: Any) -> dict[str, Any]:
    return {
        "id": JOB_ID,
        "model_name": "tiny-llama-lora",
        "status": "running",
        "started_at": NOW - 62,
        "finished_at": None,
        "total_steps": 600,
        "total_epochs": 2,
        "step": 360,
        "epoch": 1.2,
        "last_metrics": {
            "step": 360,
            "train_loss": 0.412,
            "eval_loss": 0.455,
            "learning_rate": 2e-5,
            "samples_per_second": 812.5,
        },
        "error": None,
        "log_lines": 3,
        "elapsed_s": 62.0,
        "progress": 0.6,
        "eta_s": 41.0,
        **overrides,
    }


def finished_job(job_id: str, status: str, error: str | None = None) -> dict[str, Any]:
    return {
        **running_job(id=job_id, status=status, error=error, eta_s=None),
        "model_name": "demo",
        "finished_at": NOW - 600,
        "elapsed_s": 192.0,
        "step": 600,
        "progress": 1.0,
    }


def snapshot(*, jobs: int = 0, recent: bool = True, **connection: Any) -> dict[str, Any]:
    return {
        "snapshot_version": 1,
        "now": NOW,
        "agent_id": AGENT_ID,
        "pid": 4242,
        "version": "0.1.0",
        "backend_url": "https://app.example.com",
        "started_at": NOW - 7380,
        "draining": False,
        "connection": _connection(**connection),
        "jobs": [running_job()] if jobs else [],
        "recent_jobs": [
            finished_job("5b0d3e1f-aaaa", "completed"),
            finished_job("91aa07c2-bbbb", "failed", "CUDA out of memory"),
        ]
        if recent
        else [],
        "resources": {},
        "counters": {"polls": 812, "poll_errors": 0, "jobs_finished": {"completed": 1}},
    }


USAGE = {
    "cpu_percent": 37.5,
    "cpu_count": 8,
    "memory_gb": 31.2,
    "memory_used_gb": 10.7,
    "disk_free_gb": 120.4,
    "gpus": [
        {
            "index": 0,
            "name": "NVIDIA A10",
            "utilization_percent": 98,
            "memory_gb": 22.5,
            "memory_used_gb": 20.1,
        }
    ],
}


def loss_points(count: int = 36) -> list[dict[str, Any]]:
    points = []
    for i in range(1, count + 1):
        point: dict[str, Any] = {"step": i * 10, "epoch": i / 30, "train_loss": 2.0 / (1 + i / 6)}
        if i % 6 == 0:
            point["eval_loss"] = 2.1 / (1 + i / 7)
        points.append(point)
    return points


class FakeSource:
    """Serves one snapshot, then whatever the test ``push``es; records control calls."""

    def __init__(
        self,
        first: dict[str, Any],
        *,
        points: list[dict[str, Any]] | None = None,
        log: list[str] | None = None,
        usage: dict[str, Any] | None = None,
    ) -> None:
        self.snapshot = copy.deepcopy(first)
        self.points = points or []
        self.log = log or []
        self.usage = usage
        self.calls: list[tuple[str, ...]] = []
        self._queue: asyncio.Queue[StatusEvent | None] | None = None
        self.closed = False

    def push(self, name: str, data: Any) -> None:
        assert self._queue is not None, "no one follows the events yet"
        self._queue.put_nowait(StatusEvent(name, data))

    def end(self) -> None:
        assert self._queue is not None
        self._queue.put_nowait(None)

    async def events(self) -> AsyncIterator[StatusEvent]:
        self._queue = asyncio.Queue()
        yield StatusEvent("status", self.snapshot)
        while (event := await self._queue.get()) is not None:
            yield event

    async def job_metrics(self, job_id: str) -> list[dict[str, Any]]:
        return list(self.points)

    async def job_log(self, job_id: str, *, tail: int = 100) -> tuple[int, list[str]]:
        kept = self.log[-tail:]
        return len(self.log) - len(kept), kept

    async def resources(self) -> dict[str, Any]:
        if self.usage is None:
            raise StatusApiError("the agent refused the request: not supported")
        return dict(self.usage)

    async def cancel(self, job_id: str) -> None:
        self.calls.append(("cancel", job_id))

    async def drain(self) -> None:
        self.calls.append(("drain",))
        self.snapshot["draining"] = True
        self.push("status", copy.deepcopy(self.snapshot))

    async def resume(self) -> None:
        self.calls.append(("resume",))
        self.snapshot["draining"] = False
        self.push("status", copy.deepcopy(self.snapshot))

    async def aclose(self) -> None:
        self.closed = True


def no_agent() -> FakeSource:
    raise AgentNotRunningError("no agent is running here (no /x/status.json)")
