"""JobRunner: one job from config to outcome, with a real child."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.executor import (
    JOB_TOKEN,
    RecordingSink,
    alive,
    command_job,
    read_pids,
    wait_until,
)
from training_agent.executor import process
from training_agent.executor.plan import COMMANDS_DISABLED
from training_agent.jobs import JobOutcome, JobStatus

from .conftest import MakeRunner

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


async def test_a_successful_command_completes_with_its_log(
    make_runner: MakeRunner, sink: RecordingSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="training_agent.executor.runner")
    outcome = await make_runner(command_job("print-lines", "3")).run()
    assert outcome == JobOutcome(JobStatus.COMPLETED, exit_code=0)
    assert [line for line in sink.lines if line.startswith("out")] == ["out 1", "out 2", "out 3"]
    assert sorted(sink.lines) == ["err 1", "err 2", "err 3", "out 1", "out 2", "out 3"]
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("job job-1 started pid=") for m in messages)
    assert "job job-1 finished status=completed exit_code=0" in messages


async def test_a_failing_command_reports_exit_code_and_stderr_tail(
    make_runner: MakeRunner,
) -> None:
    outcome = await make_runner(command_job("stderr-fail")).run()
    assert outcome.status is JobStatus.FAILED
    assert outcome.exit_code == 3
    assert outcome.reason == (
        "exit code 3: Traceback (most recent call last):\n  oops\nValueError: boom"
    )


async def test_a_long_stderr_tail_is_bounded_to_its_end(make_runner: MakeRunner) -> None:
    outcome = await make_runner(command_job("stderr-flood", "100")).run()
    assert outcome.reason is not None
    assert len(outcome.reason) <= 2000
    assert outcome.reason.startswith("exit code 1: …")
    assert outcome.reason.endswith("\nline 99 " + "x" * 300)


async def test_exit_without_stderr_says_only_the_code(make_runner: MakeRunner) -> None:
    outcome = await make_runner(command_job("exit", "4")).run()
    assert outcome == JobOutcome(JobStatus.FAILED, exit_code=4, reason="exit code 4")


@posix_only
@pytest.mark.parametrize(
    ("signum", "reason"),
    [
        (signal.SIGSEGV, f"killed by signal SIGSEGV ({int(signal.SIGSEGV)})"),
        (signal.SIGKILL, "killed by signal SIGKILL (9) (the system may have run out of memory)"),
    ],
)
async def test_a_signal_death_names_the_signal(
    make_runner: MakeRunner, signum: signal.Signals, reason: str
) -> None:
    outcome = await make_runner(command_job("exit", str(-signum))).run()
    assert outcome == JobOutcome(JobStatus.FAILED, signal=signum, reason=reason)


async def test_command_jobs_are_refused_when_disabled(
    make_runner: MakeRunner, sink: RecordingSink, jobs_dir: Path
) -> None:
    outcome = await make_runner(command_job("exit", "0"), allow_command_jobs=False).run()
    assert outcome == JobOutcome(JobStatus.FAILED, reason=COMMANDS_DISABLED)
    assert outcome.reason == (
        "command jobs are disabled on this agent; set allow_command_jobs = true in "
        "config.toml or TRAINING_AGENT_ALLOW_COMMAND_JOBS=1 to run them"
    )
    assert sink.lines == [COMMANDS_DISABLED]
    assert not jobs_dir.exists()


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (
            {"model": {"name": "gpt2"}, "training": {"method": "sft"}},
            "the training runtime /nonexistent/python does not exist; run `training-agent "
            "runtime setup`",
        ),
        (
            {"foo": 1},
            'unknown job config: expected a FineTune Lab TrainingConfig or {"type": '
            '"command"|"demo", ...}',
        ),
        ({"type": "shell"}, "got type 'shell'"),
        ({"type": "command", "command": "python train.py"}, "not one string"),
        ({"type": "command", "command": []}, "a non-empty list of strings"),
        ({"type": "command", "command": ["python", 3]}, "item 1 of the"),
        ({"type": "command", "command": ["true"], "env": ["A=1"]}, "names to strings"),
        ({"type": "command", "command": ["true"], "env": {"A": 1}}, "must be a string"),
        ({"type": "command", "command": ["true"], "env": {"A=B": "1"}}, "invalid name"),
        (
            {"type": "command", "command": ["true"], "env": {"TRAINING_AGENT_JOB_ID": "x"}},
            "may not set TRAINING_AGENT_JOB_ID",
        ),
        (
            {"type": "command", "command": ["no-such-program-here"]},
            "cannot start the job: command not found: no-such-program-here",
        ),
    ],
)
async def test_configs_that_cannot_run_fail_with_a_reason(
    make_runner: MakeRunner, config: dict[str, Any], reason: str
) -> None:
    outcome = await make_runner(config).run()
    assert outcome.status is JobStatus.FAILED
    assert outcome.reason is not None and reason in outcome.reason


async def test_unsafe_job_id_fails_cleanly(make_runner: MakeRunner) -> None:
    outcome = await make_runner(command_job("exit", "0"), job_id="../escape").run()
    assert outcome.status is JobStatus.FAILED
    assert outcome.reason == "job id '../escape' cannot be used as a directory name"


async def test_the_child_env_has_no_secrets(
    make_runner: MakeRunner,
    sink: RecordingSink,
    monkeypatch: pytest.MonkeyPatch,
    jobs_dir: Path,
) -> None:
    for name in ("API_KEY", "TRAINING_AGENT_API_KEY", "HF_TOKEN", "MY_SECRET", "DB_PASSWORD"):
        monkeypatch.setenv(name, "s3cr3t")
    monkeypatch.setenv("BACKEND_URL", "http://backend")
    outcome = await make_runner(command_job("print-env", env={"JOB_VAR": "yes"})).run()
    assert outcome.status is JobStatus.COMPLETED
    env = dict(line.split("=", 1) for line in sink.lines)
    assert "s3cr3t" not in env.values()
    assert not any(JOB_TOKEN in line for line in sink.lines)
    assert env["BACKEND_URL"] == "http://backend"
    assert env["JOB_VAR"] == "yes"
    assert env["TRAINING_AGENT_JOB_ID"] == "job-1"
    assert env["TRAINING_AGENT_JOB_DIR"] == str(jobs_dir / "job-1")
    assert env["TRAINING_AGENT_EVENTS_FILE"] == str(jobs_dir / "job-1" / "events.jsonl")
    assert env["PYTHONUNBUFFERED"] == "1"


async def test_events_become_metrics_progress_and_outputs(
    make_runner: MakeRunner, sink: RecordingSink, jobs_dir: Path
) -> None:
    outcome = await make_runner(command_job("emit-metrics", "5")).run()
    assert outcome.status is JobStatus.COMPLETED
    assert outcome.outputs == (str(jobs_dir / "job-1" / "model.bin"),)
    assert sink.progress_calls == [(5, 1.0)]
    assert [point["step"] for point in sink.metrics] == [1, 2, 3, 4, 5]
    assert sink.metrics[0] == {"step": 1, "epoch": 0.2, "train_loss": 1.0, "perplexity": 2.0}


async def test_malformed_events_are_logged_and_skipped(
    make_runner: MakeRunner, sink: RecordingSink
) -> None:
    outcome = await make_runner(command_job("malformed-events")).run()
    assert outcome.status is JobStatus.COMPLETED
    assert [point["step"] for point in sink.metrics] == [1, 2]
    assert sink.lines == [
        "events line 2 is not valid JSON, skipped: Expecting property name enclosed in "
        "double quotes: line 1 column 2 (char 1)",
        "events line 3: metric skipped: step must be an integer >= 1, got 0",
    ]


@posix_only
async def test_cancel_walks_the_kill_ladder(make_runner: MakeRunner, sink: RecordingSink) -> None:
    runner = make_runner(command_job("ignore-sigterm"), cancel_grace_s=0.5)
    task = asyncio.create_task(runner.run())
    await wait_until(lambda: sink.lines == ["ready"])
    runner.request_cancel("cancelled by the user")
    runner.request_cancel("a second reason is ignored")
    outcome = await task
    assert outcome.status is JobStatus.CANCELLED
    assert outcome.reason == "cancelled by the user"
    assert outcome.signal == signal.SIGKILL
    runner.request_cancel("after the end: no effect")


async def test_cancel_before_run_starts_nothing(make_runner: MakeRunner, jobs_dir: Path) -> None:
    runner = make_runner(command_job("print-lines", "1"))
    runner.request_cancel("agent stopped")
    assert await runner.run() == JobOutcome(JobStatus.CANCELLED, reason="agent stopped")
    assert not jobs_dir.exists()
    with pytest.raises(RuntimeError, match="only once"):
        await runner.run()


async def test_leftover_processes_are_swept_after_the_job(
    make_runner: MakeRunner, tmp_path: Path, pid_file: Path
) -> None:
    outcome = await make_runner(command_job("spawn-grandchild", str(pid_file), "exit")).run()
    assert outcome.status is JobStatus.COMPLETED
    _, grandchild = read_pids(pid_file)
    await wait_until(lambda: not alive(grandchild), timeout_s=5)


async def test_asyncio_cancellation_kills_the_tree(
    make_runner: MakeRunner, sink: RecordingSink, pid_file: Path
) -> None:
    task = asyncio.create_task(
        make_runner(command_job("spawn-grandchild", str(pid_file), "wait")).run()
    )
    await wait_until(lambda: sink.lines == ["ready"])
    leader, grandchild = read_pids(pid_file)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not alive(leader)
    await wait_until(lambda: not alive(grandchild), timeout_s=5)


async def test_a_leftover_holding_the_pipes_does_not_hold_the_job(
    make_runner: MakeRunner, sink: RecordingSink, pid_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "DRAIN_S", 0.2)
    started = time.monotonic()
    runner = make_runner(command_job("spawn-grandchild", str(pid_file), "exit-holding"))
    outcome = await runner.run()
    assert outcome.status is JobStatus.COMPLETED
    assert time.monotonic() - started < 5
    assert sink.lines == ["ready"]
    _, grandchild = read_pids(pid_file)
    await wait_until(lambda: not alive(grandchild), timeout_s=5)


async def test_a_job_dir_that_cannot_be_made_fails_the_job(
    make_runner: MakeRunner, jobs_dir: Path
) -> None:
    jobs_dir.write_text("a file where the jobs dir should be")
    outcome = await make_runner(command_job("exit", "0")).run()
    assert outcome.status is JobStatus.FAILED
    assert outcome.reason is not None
    assert outcome.reason.startswith("cannot prepare the job directory")


async def test_a_training_runtime_without_torch_fails_naming_the_setup_command(
    tmp_path: Path, jobs_dir: Path, sink: RecordingSink
) -> None:
    import venv

    from training_agent.executor.runner import JobRunner
    from training_agent.jobs import ClaimedJob

    # A bare virtual environment: neither torch nor this agent's package is installed.
    venv.create(tmp_path / "bare", with_pip=False)
    python = tmp_path / "bare" / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    config = {"model": {"name": "gpt2"}, "training": {"method": "sft"}, "dataset_path": "d.jsonl"}
    runner = JobRunner(
        job=ClaimedJob(id="job-1", job_token=JOB_TOKEN, config=config),
        jobs_dir=jobs_dir,
        sink=sink,
        allow_command_jobs=False,
        cancel_grace_s=0.5,
        training_python=str(python),
    )
    outcome = await runner.run()
    assert (outcome.status, outcome.exit_code) == (JobStatus.FAILED, 3)
    assert outcome.reason is not None
    assert f"this Python ({python}) cannot import torch" in outcome.reason
    assert "run `training-agent runtime setup` on this machine" in outcome.reason
