"""launchd: a LaunchAgent in ``~/Library/LaunchAgents``, loaded into the user's GUI domain.

It runs ``training-agent service run`` (the agent, with a revoked agent's exit code 4
turned into 0): KeepAlive restarts only an agent that exited non-zero, so a crash is
restarted and a stop or a revocation is not (launchd has no RestartPreventExitStatus).
"""

from __future__ import annotations

import os
import plistlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from training_agent.service.base import ServiceManager, ServiceState, ServiceStatus
from training_agent.service.templates import LAUNCHD_TEMPLATE, template_path

LABEL = "org.training-agent.agent"


def launch_agents_dir() -> Path:
    return Path.home() / "Library" / "LaunchAgents"


@dataclass
class LaunchdService(ServiceManager):
    agents_dir: Path = field(default_factory=launch_agents_dir)
    uid: int = field(default_factory=lambda: os.getuid() if hasattr(os, "getuid") else 0)

    @property
    def kind(self) -> str:
        return "launchd agent"

    @property
    def tool(self) -> str:
        return "launchctl"

    @property
    def unit_path(self) -> Path:
        return self.agents_dir / f"{LABEL}.plist"

    @property
    def target(self) -> str:
        return f"gui/{self.uid}/{LABEL}"

    def render(self) -> str:
        plist = plistlib.loads(template_path(LAUNCHD_TEMPLATE).read_bytes())
        log_dir = self.spec.paths.log_dir
        plist.update(
            Label=LABEL,
            ProgramArguments=self.spec.argv("service", "run"),
            EnvironmentVariables=dict(self.spec.environment),
            ExitTimeOut=self.spec.stop_timeout_s,
            StandardOutPath=str(log_dir / "service.log"),
            StandardErrorPath=str(log_dir / "service.log"),
        )
        return plistlib.dumps(plist).decode("utf-8")

    def write_unit(self) -> None:
        self.spec.paths.log_dir.mkdir(parents=True, exist_ok=True)  # launchd opens it
        super().write_unit()

    def register(self) -> None:
        self.run("bootout", self.target, check=False)  # an older copy: unload it first
        self.run("bootstrap", f"gui/{self.uid}", str(self.unit_path))  # RunAtLoad starts it

    def activate(self) -> None:
        """Nothing: ``bootstrap`` in :meth:`register` already started the new definition."""

    def unregister(self) -> None:
        self.run("bootout", self.target)

    def start(self) -> None:
        self.run("kickstart", self.target)

    def stop(self) -> None:
        # SIGTERM: the agent drains and exits 0, which KeepAlive does not restart.
        self.run("kill", "SIGTERM", self.target)

    def restart(self) -> None:
        self.run("kickstart", "-k", self.target)

    def status(self) -> ServiceStatus:
        if not self.installed:
            return ServiceStatus(ServiceState.NOT_INSTALLED, f"no plist at {self.unit_path}")
        ran = self.run("print", self.target, check=False)
        if ran.missing:
            return ServiceStatus(ServiceState.UNKNOWN, "launchctl is not available")
        if not ran.ok:
            return ServiceStatus(ServiceState.STOPPED, f"not loaded ({ran.why()})")
        state = re.search(r"^\s*state = (.+)$", ran.output, re.MULTILINE)
        said = state.group(1).strip() if state else "unknown"
        running = ServiceState.RUNNING if said == "running" else ServiceState.STOPPED
        return ServiceStatus(running, said)
