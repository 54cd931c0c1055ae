"""The service step of ``training-agent install`` and ``uninstall``, and
``install_service``, which ``service install`` runs too.

Kept apart from the installer's own flow (inputs, key check, files): the installer asks
this for the system service before it writes anything (``--service system`` moves every
file to the service's directory), and hands over to it at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from training_agent.errors import ConfigError, ServiceError, TrainingAgentError
from training_agent.paths import AgentPaths
from training_agent.service import ServiceManager
from training_agent.service.shell import Runner
from training_agent.service.systemd import SYSTEM_UNIT_DIR, UNIT_NAME, SystemdService

SYSTEM_UNIT = SYSTEM_UNIT_DIR / UNIT_NAME


def install_service(manager: ServiceManager) -> int:
    """Write and register the unit and (re)start it; with no service manager here, say
    where the unit is and how to run the agent instead (exit 0: the unit is written)."""
    if manager.install():
        try:
            manager.activate()
        except ServiceError as exc:
            manager.say(f"training-agent: {exc}")
            return 1
        manager.say(f"The {manager.kind} is installed and started.")
    return 0


@dataclass
class ServiceStep:
    services: Callable[..., ServiceManager]  # service_manager, or a test's factory
    platform: str
    runner: Runner
    say: Callable[[str], None]
    environ: Mapping[str, str]

    def manager(self, paths: AgentPaths, *, system: bool) -> ServiceManager:
        return self.services(
            paths,
            system=system,
            platform=self.platform,
            runner=self.runner,
            say=self.say,
            environ=self.environ,
        )

    def system_service(self, paths: AgentPaths) -> SystemdService:
        """The system service; its ``spec.paths`` are where the install must write."""
        manager = self.manager(paths, system=True)
        if not isinstance(manager, SystemdService):  # pragma: no cover - refused earlier
            raise ConfigError("--service system is for Linux (systemd)")
        return manager

    def install(self, paths: AgentPaths, choice: str, system: SystemdService | None) -> None:
        """Install and start the chosen service; a missing service manager is said (the
        unit is written all the same), not fatal."""
        if choice == "none":
            self.say("No background service (--service none): run 'training-agent start'.")
            return
        install_service(system or self.manager(paths, system=False))

    def remove(self, paths: AgentPaths) -> list[Path]:
        """Remove the user service and, when there is one, the system service; the
        directories ``--purge`` removes besides this user's (the system service's)."""
        self.manager(paths, system=False).uninstall()
        if not self.platform.startswith("linux") or not SYSTEM_UNIT.exists():
            return []
        try:
            system = self.manager(paths, system=True)
            return [system.spec.paths.config_dir.parent] if system.uninstall() else []
        except (TrainingAgentError, OSError) as exc:  # not root: its files are unreadable
            self.say(f"training-agent: the system service was left alone: {exc}")
            return []
