"""Windows: a Task Scheduler task that starts at this user's logon.

No elevation (``LeastPrivilege``, an interactive token: no password is stored), no time
limit, restarted every minute on failure. It runs ``training-agent service run
--restart-on-failure``: Task Scheduler's own restart covers an action that fails to
start, the agent's loop covers an agent that exits with an error. schtasks reads task
XML as UTF-16. The executable install runs its launcher (``training-agent.cmd``,
``update/layout.py``) under ``cmd.exe``: the launcher starts the current build, and
starts the new one when the agent exits for a self-update.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from training_agent.service.base import SERVICE_NAME, ServiceManager, ServiceState, ServiceStatus
from training_agent.service.templates import WINDOWS_TEMPLATE, fill

TASK_NAME = SERVICE_NAME


def windows_user() -> str:
    """``DOMAIN\\user`` as Task Scheduler names the logged-on user."""
    user = os.environ.get("USERNAME") or os.environ.get("USER") or "user"
    domain = os.environ.get("USERDOMAIN")
    return f"{domain}\\{user}" if domain else user


def windowless(program: tuple[str, ...]) -> tuple[str, ...]:
    """pythonw.exe instead of python.exe when there is one: no console window at logon."""
    first = Path(program[0])
    if first.name.lower() == "python.exe" and (first.parent / "pythonw.exe").exists():
        return (str(first.parent / "pythonw.exe"), *program[1:])
    return program


def task_action(argv: tuple[str, ...]) -> tuple[str, str]:
    """The task's command and its argument string for ``argv``; a batch launcher runs
    under ``cmd.exe /d /s /c "…"`` (``/s``: only the outer quotes are removed): for
    ``C:\\A B\\training-agent.cmd service run`` that is ``cmd.exe`` with
    ``/d /s /c ""C:\\A B\\training-agent.cmd" service run"``.
    """
    if argv[0].lower().endswith((".cmd", ".bat")):
        return "cmd.exe", f'/d /s /c "{subprocess.list2cmdline(argv)}"'
    return argv[0], subprocess.list2cmdline(argv[1:])


@dataclass
class WindowsTask(ServiceManager):
    encoding = "utf-16"

    @property
    def kind(self) -> str:
        return "scheduled task"

    @property
    def tool(self) -> str:
        return "schtasks"

    @property
    def unit_path(self) -> Path:
        return self.spec.paths.config_dir / f"{TASK_NAME}-task.xml"

    def render(self) -> str:
        command, arguments = task_action(
            (*windowless(self.spec.program), "service", "run", "--restart-on-failure")
        )
        return fill(
            WINDOWS_TEMPLATE,
            user_id=escape(windows_user()),
            command=escape(command),
            arguments=escape(arguments),
            working_dir=escape(str(self.spec.paths.data_dir)),
        )

    def write_unit(self) -> None:
        self.spec.paths.data_dir.mkdir(parents=True, exist_ok=True)  # its working directory
        super().write_unit()

    def register(self) -> None:
        self.run("/Create", "/TN", TASK_NAME, "/XML", str(self.unit_path), "/F")

    def unregister(self) -> None:
        self.run("/End", "/TN", TASK_NAME, check=False)
        self.run("/Delete", "/TN", TASK_NAME, "/F")

    def start(self) -> None:
        self.run("/Run", "/TN", TASK_NAME)

    def stop(self) -> None:
        self.run("/End", "/TN", TASK_NAME)

    def restart(self) -> None:
        self.run("/End", "/TN", TASK_NAME, check=False)
        self.start()

    def status(self) -> ServiceStatus:
        if not self.installed:
            return ServiceStatus(ServiceState.NOT_INSTALLED, f"no task at {self.unit_path}")
        ran = self.run("/Query", "/TN", TASK_NAME, "/FO", "LIST", check=False)
        if ran.missing:
            return ServiceStatus(ServiceState.UNKNOWN, "schtasks is not available")
        if not ran.ok:
            return ServiceStatus(ServiceState.STOPPED, f"not registered ({ran.why()})")
        said = next(
            (
                line.split(":", 1)[1].strip()
                for line in ran.output.splitlines()
                if line.startswith("Status:")
            ),
            "unknown",
        )
        state = ServiceState.RUNNING if said == "Running" else ServiceState.STOPPED
        return ServiceStatus(state, said)
