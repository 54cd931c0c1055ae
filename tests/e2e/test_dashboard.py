"""The dashboard against the real thing: a backend and an agent as processes, the
dashboard attached to the agent's live status API (Textual's pilot drives it)."""

from __future__ import annotations

import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.support.agent import agent_env, start_agent, wait_agent
from tests.support.backend import BackendProcess
from tests.support.e2e import WAIT_S, slow_demo_job
from tests.support.terminal import terminal
from training_agent.paths import AgentPaths
from training_agent.tui.app import DashboardApp, create_app
from training_agent.tui.source import status_api_connector
from training_agent.tui.widgets.job_detail import JobDetail
from training_agent.tui.widgets.jobs_table import JobsTable
from training_agent.tui.widgets.log_tail import LogTail

pytestmark = pytest.mark.e2e


async def shown(pilot: Pilot[Any], check: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"the dashboard never showed {what}"
        await pilot.pause(0.1)


def row(app: DashboardApp, job_id: str) -> list[str]:
    table = app.query_one(JobsTable)
    return [str(cell) for cell in table.get_row(job_id)]


async def test_the_dashboard_follows_a_real_job(backend: BackendProcess, tmp_path: Path) -> None:
    owner, job_id = slow_demo_job(backend, tmp_path, "dana")
    home = tmp_path / "agent"
    paths = AgentPaths.under(home)
    agent = start_agent(agent_env(home, backend_url=backend.url, api_key=owner.key))
    app = create_app(status_api_connector(paths.status_file), retry_s=0.2)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await shown(
                pilot,
                lambda: ((app.model.job(job_id) or {}).get("step") or 0) > 5,
                "the job's progress",
            )
            await pilot.pause()
            cells = row(app, job_id)
            assert cells[2] == "running"
            assert re.fullmatch(r"[█░]{8} +\d+%", cells[3])  # the progress bar
            assert "/" in cells[4]  # step N/total
            assert "step" in str(app.query_one(JobDetail).render())
            assert app.model.series(job_id, "train_loss")  # the chart has points
            assert app.query_one(LogTail).lines  # the log tail follows the job
            await shown(pilot, lambda: app.model.usage, "the machine's load")
            assert app.model.usage is not None and app.model.usage["cpu_count"] >= 1

            await shown(
                pilot,
                lambda: (app.model.job(job_id) or {}).get("status") == "completed",
                "the job's completion",
            )
            await pilot.pause()
            cells = row(app, job_id)
            assert cells[2] == "completed"
            assert cells[3] == "████████ 100%"
    finally:
        agent.send_signal(signal.SIGTERM)
        code, output = wait_agent(agent)
    assert code == 0, output


def test_start_with_the_dashboard_in_one_terminal(backend: BackendProcess, tmp_path: Path) -> None:
    """``start --dashboard``: the agent runs behind the dashboard, its output goes to
    console.log (not over the screen), and quitting can stop it."""
    owner, job_id = slow_demo_job(backend, tmp_path, "tom")
    home = tmp_path / "agent"
    env = agent_env(home, backend_url=backend.url, api_key=owner.key, TERM="xterm-256color")
    command = [sys.executable, "-m", "training_agent", "start", "--dashboard"]
    with terminal(tmp_path, command, env, (100, 30)) as term:
        term.wait_for("connected")
        term.wait_for(job_id[:7])
        screen = term.wait_for("completed")
        assert "INFO" not in screen  # the agent's log lines stay off the screen
        term.press("q")
        term.wait_for("Stop the agent as well?")
        term.press("y")
        term.wait_for("EXITED 0")
    assert not (home / "state" / "status.json").exists()  # the agent stopped cleanly
    console = (home / "logs" / "console.log").read_text()
    assert f"job {job_id}" in console


def test_a_double_click_sets_up_first_and_then_opens_the_dashboard(tmp_path: Path) -> None:
    home = tmp_path / "agent"
    env = agent_env(home, backend_url="", api_key="", TERM="xterm-256color")
    command = [sys.executable, "-m", "training_agent"]
    with terminal(tmp_path, command, env, (80, 24)) as term:
        term.wait_for("Connect this machine to your training platform")
        term.press("Escape")
        term.wait_for("EXITED 1")  # quit before installing
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text('backend_url = "http://127.0.0.1:9"\n')
    with terminal(tmp_path, command, env, (80, 24)) as term:
        term.wait_for("No agent is running on this machine.")
        term.press("q")
        term.wait_for("EXITED 0")
