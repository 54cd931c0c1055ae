"""``training-agent dashboard``, ``setup`` and ``start --dashboard``, and what a start
without arguments (a double-click) runs: the terminal UI of ``training_agent.tui``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from training_agent.errors import AgentNotRunningError, ConfigError, StateError
from training_agent.paths import AgentPaths
from training_agent.status.client import find_agent
from training_agent.tui.app import DashboardApp, create_app
from training_agent.tui.launch import SpawnedAgent
from training_agent.tui.source import status_api_connector


def has_terminal() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def double_click_args(paths: AgentPaths) -> list[str]:
    """What a start without arguments runs: set up when unconfigured, else watch the
    agent; the text commands when there is no terminal to draw on."""
    configured = paths.config_file.exists()
    if has_terminal():
        return ["dashboard"] if configured else ["setup"]
    return ["status"] if configured else ["install"]


def setup_command(paths: AgentPaths) -> int:
    """The setup screen; then, if the user asks, the dashboard."""
    from training_agent.tui.setup_screen import SetupApp

    if not has_terminal():
        raise ConfigError("the setup screen needs a terminal; run 'training-agent install'")
    app = SetupApp()
    choice = app.run()
    if app.report:
        print(app.report.rstrip(), file=sys.stderr)  # the installer's words stay on screen
    if choice == "dashboard":
        return dashboard_command(paths)
    return 0 if app.installed else 1


def create_live_app(paths: AgentPaths, *, spawned: SpawnedAgent | None = None) -> DashboardApp:
    """The dashboard of the agent whose files are under ``paths`` (what the CLI runs)."""
    return create_app(
        status_api_connector(paths.status_file),
        launcher=lambda: SpawnedAgent(paths.log_dir),
        spawned=spawned,
    )


def dashboard_command(paths: AgentPaths) -> int:
    """Attach to the running agent (or offer to start one) until the user quits."""
    if not has_terminal():
        raise ConfigError(
            "the dashboard needs a terminal; 'training-agent status' prints the same as text"
        )
    app = create_live_app(paths)
    app.run()
    return app.return_code or 0


def start_with_dashboard(paths: AgentPaths, start_args: Sequence[str]) -> int:
    """Run ``training-agent start START_ARGS`` as a child and the dashboard in front of it.

    The child's console output goes to ``console.log`` in the log dir (the dashboard owns
    the terminal); quitting asks whether to stop it (drain) or leave it running. When an
    agent already runs here, a second one would share its state directory: show that one.
    """
    try:
        running = find_agent(paths.status_file)
    except (AgentNotRunningError, StateError):
        running = None
    if running is not None:
        print(
            f"training-agent: an agent is already running here (pid {running.pid}); "
            "showing its dashboard",
            file=sys.stderr,
        )
        return dashboard_command(paths)
    spawned = SpawnedAgent(paths.log_dir, ["start", *start_args])
    app = create_live_app(paths, spawned=spawned)
    try:
        app.run()
    finally:
        ended = spawned.exited()
        if ended is not None:
            print(f"training-agent: {ended}", file=sys.stderr)
        elif not app.stop_agent:
            print(
                f"The agent keeps running in the background (pid {spawned.process.pid}): "
                "'training-agent dashboard' shows it, 'training-agent drain' stops its claiming.",
                file=sys.stderr,
            )
    if ended is not None:
        return spawned.wait()
    return _stop(spawned) if app.stop_agent else 0


def _stop(spawned: SpawnedAgent) -> int:
    print(
        "Stopping the agent: it finishes its running job first (Ctrl-C cancels the job).",
        file=sys.stderr,
    )
    spawned.stop()
    try:
        return spawned.wait()
    except KeyboardInterrupt:
        spawned.stop()  # the second signal: cancel the running jobs
        return spawned.wait()
