"""``training-agent service install|uninstall|start|stop|restart|status|logs|run``."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from training_agent.errors import ServiceError, TrainingAgentError
from training_agent.paths import AgentPaths
from training_agent.service import ServiceManager, ServiceState, service_manager
from training_agent.service.install_step import install_service

EXIT_NOT_RUNNING = 3  # `service status` when the service does not run (as systemctl says)
EXIT_REVOKED = 4  # the agent's own code for "the platform revoked me" (daemon.py)
RESTART_DELAY_S = 10.0
MAX_RESTART_DELAY_S = 300.0


def service_command(
    manager: ServiceManager,
    action: str,
    *,
    lines: int = 50,
    follow: bool = False,
    out: TextIO | None = None,
) -> int:
    """Do ``action`` with ``manager``; the exit code."""
    stream = sys.stdout if out is None else out
    if action == "install":
        manager.prepare()
        _say_if_no_key(manager)
        return install_service(manager)
    if action == "uninstall":
        if not manager.uninstall():
            manager.say(f"No {manager.kind} is installed ({manager.unit_path}).")
        return 0
    if action == "status":
        status = manager.status()
        print(f"{manager.kind}: {status.state.value} ({status.detail})", file=stream)
        return 0 if status.state is ServiceState.RUNNING else EXIT_NOT_RUNNING
    if action == "logs":
        return show_logs(manager, lines=lines, follow=follow, out=stream)
    if not manager.installed:
        raise ServiceError(
            f"the {manager.kind} is not installed: run 'training-agent service install' first"
        )
    {"start": manager.start, "stop": manager.stop, "restart": manager.restart}[action]()
    manager.say(f"{action}: done ({manager.kind}); check it with 'training-agent service status'.")
    return 0


def _say_if_no_key(manager: ServiceManager) -> None:
    from training_agent.service.systemd import SystemdService

    if isinstance(manager, SystemdService) and (key_file := manager.missing_key_file()):
        manager.say(
            f"training-agent: the system service reads its key from {key_file}, which does "
            "not exist yet: run 'sudo training-agent install --service system'"
        )


def show_logs(manager: ServiceManager, *, lines: int, follow: bool, out: TextIO) -> int:
    """The service manager's log when it has one that works, else the agent's log file."""
    command = manager.logs_command(lines=lines, follow=follow)
    if command and shutil.which(command[0]):
        code = subprocess.call(command)
        if code == 0 or follow:
            return code
    log_file = manager.spec.paths.log_file
    if not log_file.exists():
        raise ServiceError(f"no log yet: {log_file} does not exist (has the agent run?)")
    return tail(log_file, lines=lines, follow=follow, out=out)


def tail(
    path: Path,
    *,
    lines: int,
    follow: bool,
    out: TextIO,
    sleep: Callable[[float], None] = time.sleep,
    keep_going: Callable[[], bool] = lambda: True,
) -> int:
    """Print the last ``lines`` lines of ``path``; with ``follow``, then what is added."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in deque(handle, maxlen=lines):
            out.write(line)
        out.flush()
        while follow and keep_going():
            line = handle.readline()
            if line:
                out.write(line)
                out.flush()
            else:
                sleep(0.5)
    return 0


def run_service(
    start: Callable[[], int],
    *,
    restart_on_failure: bool,
    say: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """What launchd and the Windows task run: the agent, with exit code 4 (revoked)
    turned into 0 so neither restarts it, and, with ``restart_on_failure``, started
    again (10 s, doubling to 5 min) after it exits with an error."""
    delay = RESTART_DELAY_S
    while True:
        try:
            code = start()
        except TrainingAgentError as exc:
            if not restart_on_failure:
                raise
            say(f"training-agent: {exc}")
            code = 1
        if code == EXIT_REVOKED:
            say("training-agent: the platform revoked this agent; the service stays stopped")
            return 0
        if code == 0 or not restart_on_failure:
            return code
        say(f"training-agent: the agent exited with code {code}; starting it again in {delay:.0f}s")
        sleep(delay)
        delay = min(delay * 2, MAX_RESTART_DELAY_S)


def start_agent(paths: AgentPaths) -> int:
    """``training-agent start`` with the settings of config.toml and the environment."""
    from training_agent.agent import run_agent
    from training_agent.config import load_settings

    settings = load_settings(config_file=paths.config_file)
    return asyncio.run(run_agent(settings, paths))


def manager_for(paths: AgentPaths, *, system: bool) -> ServiceManager:
    return service_manager(paths, system=system, say=lambda line: print(line, file=sys.stderr))
