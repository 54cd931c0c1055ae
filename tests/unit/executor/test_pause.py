"""Pause and resume: only with a trainer that declared it, acknowledged before reported."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.executor import JOB_TOKEN, RecordingSink, command_job, wait_until
from training_agent.executor.runner import PAUSE_UNSUPPORTED, JobRunner
from training_agent.jobs import ClaimedJob, JobStatus

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

# 240 steps of 10 ms: time enough to pause in the middle.
SLOW_DEMO = {"type": "demo", "samples": 1600, "epochs": 3, "batch_size": 16, "step_delay_s": 0.01}


def make_runner(
    jobs_dir: Path, sink: RecordingSink, config: dict[str, Any], statuses: list[JobStatus]
) -> JobRunner:
    return JobRunner(
        job=ClaimedJob(id="job-1", job_token=JOB_TOKEN, config=config),
        jobs_dir=jobs_dir,
        sink=sink,
        allow_command_jobs=True,
        cancel_grace_s=5,
        extra_env={"CUDA_VISIBLE_DEVICES": "3"},
        on_status=statuses.append,
    )


async def test_the_demo_trainer_pauses_and_resumes_and_still_finishes(
    tmp_path: Path, sink: RecordingSink
) -> None:
    statuses: list[JobStatus] = []
    runner = make_runner(tmp_path / "jobs", sink, SLOW_DEMO, statuses)
    task = asyncio.create_task(runner.run())
    await wait_until(lambda: len(sink.metrics) >= 5)

    assert runner.request_pause()
    await wait_until(lambda: statuses == [JobStatus.PAUSED])
    paused_line = next(line for line in sink.lines if line.startswith("paused after step"))
    paused_at = int(paused_line.rsplit(" ", 1)[1])
    await wait_until(lambda: len(sink.metrics) >= paused_at)  # the events file caught up
    assert max(point["step"] for point in sink.metrics) == paused_at  # no step while paused
    control = json.loads((tmp_path / "jobs" / "job-1" / "control.json").read_text())
    assert control == {"action": "pause"}

    assert runner.request_resume()
    outcome = await task

    assert statuses == [JobStatus.PAUSED, JobStatus.RUNNING]
    assert outcome.status is JobStatus.COMPLETED
    assert [point["step"] for point in sink.metrics] == list(range(1, 241))
    assert f"resumed at step {paused_at + 1}" in sink.lines


async def test_a_paused_trainer_still_stops_on_cancel(tmp_path: Path, sink: RecordingSink) -> None:
    statuses: list[JobStatus] = []
    runner = make_runner(tmp_path / "jobs", sink, SLOW_DEMO, statuses)
    task = asyncio.create_task(runner.run())
    await wait_until(lambda: len(sink.metrics) >= 3)
    assert runner.request_pause()
    await wait_until(lambda: statuses == [JobStatus.PAUSED])
    runner.request_cancel("cancelled on the platform")
    outcome = await task
    assert (outcome.status, outcome.exit_code) == (JobStatus.CANCELLED, 143)
    assert not runner.request_resume()  # over: nothing to ask


async def test_a_trainer_without_pause_support_keeps_running_and_the_log_says_why(
    tmp_path: Path, sink: RecordingSink
) -> None:
    statuses: list[JobStatus] = []
    runner = make_runner(tmp_path / "jobs", sink, command_job("graceful-sigterm"), statuses)
    task = asyncio.create_task(runner.run())
    await wait_until(lambda: "ready" in sink.lines)

    assert not runner.request_pause()
    assert not runner.request_resume()  # never paused: nothing said

    assert sink.lines.count(PAUSE_UNSUPPORTED) == 1
    assert not (tmp_path / "jobs" / "job-1" / "control.json").exists()
    runner.request_cancel("done")  # it was running all along: SIGTERM ends it
    outcome = await task
    assert outcome.exit_code == 143 and statuses == []


async def test_the_agents_gpu_assignment_reaches_the_trainer(
    tmp_path: Path, sink: RecordingSink
) -> None:
    runner = make_runner(tmp_path / "jobs", sink, command_job("print-env"), [])
    outcome = await runner.run()
    assert outcome.status is JobStatus.COMPLETED
    assert "CUDA_VISIBLE_DEVICES=3" in sink.lines
    control_file = tmp_path / "jobs" / "job-1" / "control.json"
    assert f"TRAINING_AGENT_CONTROL_FILE={control_file}" in sink.lines


def test_a_request_before_start_is_refused(tmp_path: Path, sink: RecordingSink) -> None:
    runner = make_runner(tmp_path / "jobs", sink, SLOW_DEMO, [])
    assert not runner.request_pause()
    assert sink.lines == []
