"""The background service on each platform: systemd (user or system), launchd, Windows.

    manager = service_manager(paths, system=False)
    if manager.install():   # writes the unit; False when the service manager is missing
        manager.activate()

Templates: ``packaging/service`` (see ``templates.py`` for how they reach an installed
wheel or the built executable).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping

from training_agent.errors import ServiceError
from training_agent.paths import HOME_ENV, AgentPaths
from training_agent.service.base import ServiceManager, ServiceState, ServiceStatus
from training_agent.service.owner import acting_as, find_owner
from training_agent.service.shell import Runner, run_command
from training_agent.service.spec import build_spec, carried_environment

__all__ = ["ServiceManager", "ServiceState", "ServiceStatus", "service_manager"]


def service_manager(
    paths: AgentPaths,
    *,
    system: bool = False,
    platform: str = sys.platform,
    runner: Runner = run_command,
    say: Callable[[str], None] = print,
    environ: Mapping[str, str] | None = None,
) -> ServiceManager:
    """The service of this platform (``platform`` as ``sys.platform`` names it)."""
    if platform.startswith("linux"):
        from training_agent.service import systemd

        if system:
            home = systemd.SYSTEM_HOME
            carried = carried_environment(os.environ if environ is None else environ)
            env = {**carried, HOME_ENV: str(home)}
            # Its config.toml is the service user's: read it as that user, never as root.
            with acting_as(find_owner(systemd.SYSTEM_USER)):
                spec = build_spec(systemd.system_paths(home), environ=env)
            return systemd.SystemdService(
                spec, runner, say, system=True, unit_dir=systemd.SYSTEM_UNIT_DIR
            )
        return systemd.SystemdService(build_spec(paths, environ=environ), runner, say)
    if system:
        raise ServiceError(
            "--system is for Linux (systemd); on this platform install the service for "
            "your user (without --system)"
        )
    if platform == "darwin":
        from training_agent.service.launchd import LaunchdService

        return LaunchdService(build_spec(paths, environ=environ), runner, say)
    if platform == "win32":
        from training_agent.service.windows import WindowsTask

        return WindowsTask(build_spec(paths, environ=environ), runner, say)
    raise ServiceError(
        f"no background service for {platform}: run 'training-agent start' under your "
        "own service manager"
    )
