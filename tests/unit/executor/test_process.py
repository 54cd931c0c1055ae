"""ChildProcess and kill_tracked against real children (tests/support/child.py)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.support.executor import alive, read_pids, wait_until
from training_agent.errors import JobConfigError
from training_agent.executor.process import TRACKING_ENV, ChildProcess, kill_tracked

from .conftest import Spawn

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


async def test_lines_arrive_in_order_from_both_streams(spawn: Spawn) -> None:
    child, lines = await spawn("print-lines", "300")
    assert await child.wait() == 0
    assert lines.stdout == [f"out {i}" for i in range(1, 301)]
    assert lines.stderr == [f"err {i}" for i in range(1, 301)]


async def test_redraws_collapse_and_long_lines_are_cut(spawn: Spawn) -> None:
    child, lines = await spawn("progress-redraw")
    await child.wait()
    assert lines.stdout == ["start", "100%", "done"]
    assert [len(line) for line in lines.stderr] == [16384, 16384, 40_000 - 2 * 16384]


async def test_exit_code_and_signal_are_returned(spawn: Spawn) -> None:
    failed, _ = await spawn("exit", "7")
    killed, _ = await spawn("exit", str(-signal.SIGKILL))
    assert await failed.wait() == 7
    assert await killed.wait() == -signal.SIGKILL


async def test_child_gets_a_tracking_id(spawn: Spawn) -> None:
    child, lines = await spawn("print-env")
    await child.wait()
    assert f"{TRACKING_ENV}={child.tracking_id}" in lines.stdout
    assert len(child.tracking_id) == 32


@posix_only
async def test_child_leads_its_own_process_group(spawn: Spawn) -> None:
    child, lines = await spawn("ignore-sigterm")
    await wait_until(lambda: lines.stdout == ["ready"])
    assert os.getpgid(child.pid) == child.pid != os.getpgid(0)


@pytest.mark.skipif(sys.platform != "linux", reason="oom_score_adj is Linux only")
async def test_child_is_the_oom_killers_first_choice(spawn: Spawn) -> None:
    child, lines = await spawn("ignore-sigterm")
    await wait_until(lambda: lines.stdout == ["ready"])
    assert int(Path(f"/proc/{child.pid}/oom_score_adj").read_text()) >= 500


@posix_only
async def test_stop_sends_sigterm_first(spawn: Spawn) -> None:
    child, lines = await spawn("graceful-sigterm")
    await wait_until(lambda: lines.stdout == ["ready"])
    started = time.monotonic()
    assert await child.stop(grace_s=10) == 143
    assert time.monotonic() - started < 5
    assert lines.stdout == ["ready", "stopping"]


@posix_only
async def test_stop_kills_a_child_that_ignores_sigterm_after_the_grace(spawn: Spawn) -> None:
    child, lines = await spawn("ignore-sigterm")
    await wait_until(lambda: lines.stdout == ["ready"])
    started = time.monotonic()
    assert await child.stop(grace_s=0.5) == -signal.SIGKILL
    assert 0.5 <= time.monotonic() - started < 5
    assert await child.stop(grace_s=0.5) == -signal.SIGKILL  # idempotent


async def test_stop_kills_a_grandchild_in_another_session(spawn: Spawn, pid_file: Path) -> None:
    child, lines = await spawn("spawn-grandchild", str(pid_file), "wait")
    await wait_until(lambda: lines.stdout == ["ready"])
    leader, grandchild = read_pids(pid_file)
    assert leader == child.pid and alive(grandchild)
    await child.stop(grace_s=0.5)
    await wait_until(lambda: not alive(grandchild), timeout_s=5)
    assert not alive(leader)


async def test_kill_tracked_sweeps_orphans(spawn: Spawn, pid_file: Path) -> None:
    child, _ = await spawn("spawn-grandchild", str(pid_file), "exit")
    assert await child.wait() == 0
    _, grandchild = read_pids(pid_file)
    assert alive(grandchild)
    assert kill_tracked(child.tracking_id) == [grandchild]
    await wait_until(lambda: not alive(grandchild), timeout_s=5)
    assert kill_tracked(child.tracking_id) == []


async def test_missing_command_is_a_job_config_error(tmp_path: Path) -> None:
    with pytest.raises(JobConfigError, match=r"^cannot start the job: command not found: nope-"):
        await ChildProcess.start(
            ["nope-not-a-command"], cwd=tmp_path, env=dict(os.environ), on_line=print
        )


@posix_only
async def test_non_executable_command_is_a_job_config_error(tmp_path: Path) -> None:
    script = tmp_path / "train.sh"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(JobConfigError, match=r"command is not executable: .*train\.sh$"):
        await ChildProcess.start([str(script)], cwd=tmp_path, env={}, on_line=print)


async def test_missing_work_dir_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    with pytest.raises(JobConfigError, match="working directory not found"):
        await ChildProcess.start([sys.executable], cwd=missing, env={}, on_line=print)
