"""Pruning through the whole agent: real job processes, the real outbox and work dirs on
disk, a scripted backend."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time as wall
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.executor import command_job
from tests.support.fake_backend import FakeBackend
from tests.unit.test_daemon import VirtualTime, offer, statuses, wired_agent
from training_agent.daemon import EXIT_OK
from training_agent.paths import AgentPaths
from training_agent.pruning import DAY_S


async def until(predicate: Callable[[], object], timeout_s: float = 30) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_a_delivered_job_is_removed_and_one_whose_reports_wait_is_kept(
    tmp_path: Path, backend: FakeBackend
) -> None:
    paths = AgentPaths.under(tmp_path / "agent")
    offer(backend, "job-1", "job-2", config=command_job("print-lines", "2"))
    busy = httpx.Response(503, json={"error": "busy"})
    backend.on("PATCH /api/training/local/job-2/status", busy)  # job-2's reports wait
    agent = wired_agent(paths, backend, VirtualTime(), job_retention_days=0)
    first, second = paths.jobs_dir / "job-1", paths.jobs_dir / "job-2"
    try:
        daemon = asyncio.create_task(agent.daemon.run())
        await until(lambda: statuses(backend, "job-2") and not first.exists())
        assert [s["status"] for s in statuses(backend, "job-1")] == ["running", "completed"]
        assert not agent.outbox.has_job("job-1")
        assert (second / "config.json").exists() and agent.outbox.has_job("job-2")
        assert not agent.outbox.is_finished("job-2")
        daemon.cancel()  # a stop would wait 30 s for job-2's reports
        with contextlib.suppress(asyncio.CancelledError):
            await daemon
        assert second.exists()
    finally:
        await agent.aclose()


async def test_a_start_removes_what_the_retention_says_and_nothing_else(
    tmp_path: Path, backend: FakeBackend, caplog: pytest.LogCaptureFixture
) -> None:
    paths = AgentPaths.under(tmp_path / "agent")
    offer(backend, "job-1", "job-2", config=command_job("print-lines", "2"))
    agent = wired_agent(paths, backend, VirtualTime(), max_jobs=2)
    try:
        assert await asyncio.wait_for(agent.daemon.run(), 60) == EXIT_OK
    finally:
        await agent.aclose()
    assert (paths.jobs_dir / "job-1").exists() and (paths.jobs_dir / "job-2").exists()
    with sqlite3.connect(paths.outbox_file) as db:  # job-1 ended 8 days ago
        db.execute(
            "UPDATE jobs SET finished_at = ? WHERE job_id = 'job-1'", (wall.time() - 8 * DAY_S,)
        )

    offer(backend, config=command_job("print-lines", "2"))
    again = wired_agent(paths, backend, VirtualTime())
    try:
        daemon = asyncio.create_task(again.daemon.run())
        with caplog.at_level(logging.INFO, logger="training_agent.pruning"):
            await until(lambda: not again.outbox.has_job("job-1"))
        again.daemon.stop()
        assert await asyncio.wait_for(daemon, 60) == EXIT_OK
        assert not (paths.jobs_dir / "job-1").exists()
        assert again.outbox.is_finished("job-2") and (paths.jobs_dir / "job-2").exists()
    finally:
        await again.aclose()
    assert any("removed 1 finished job(s)" in r.getMessage() for r in caplog.records)
