"""What every platform's service runs: the agent's program, its environment, its stop time.

The unit carries over, from the environment ``service install`` runs in, the proxy and
CA variables (a machine behind a proxy needs them in the service too, and a service does
not read the login shell's profile) and ``TRAINING_AGENT_HOME``. Never ``API_KEY``: the
service reads the key from the credential store.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from training_agent.paths import HOME_ENV, AgentPaths
from training_agent.update.layout import stable_executable

CARRIED_VARIABLES = (
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    HOME_ENV,
)

# The stop timeout is the cancel grace plus this: time for the kill ladder to end the
# trainer, and for the agent to report the job and exit.
STOP_MARGIN_S = 60


def agent_program() -> tuple[str, ...]:
    """The command that runs this agent: the executable (through the install directory's
    stable link, so an upgrade needs no new unit), or this Python."""
    if getattr(sys, "frozen", False):
        return (str(stable_executable(Path(sys.executable))),)
    return (sys.executable, "-m", "training_agent")


def carried_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of :data:`CARRIED_VARIABLES` that are set (and not empty)."""
    return {name: environ[name] for name in CARRIED_VARIABLES if environ.get(name)}


@dataclass(frozen=True)
class ServiceSpec:
    """The platform-independent part of a service definition."""

    program: tuple[str, ...]
    paths: AgentPaths
    cancel_grace_s: float = 30.0
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def stop_timeout_s(self) -> int:
        """Longer than the cancel grace, so a cancelled job can checkpoint before SIGKILL."""
        return int(self.cancel_grace_s) + STOP_MARGIN_S

    def argv(self, *args: str) -> list[str]:
        return [*self.program, *args]


def build_spec(
    paths: AgentPaths,
    *,
    environ: Mapping[str, str] | None = None,
    program: tuple[str, ...] | None = None,
) -> ServiceSpec:
    """The spec for this installation: its settings' cancel grace, its environment."""
    from training_agent.config import load_settings

    env = os.environ if environ is None else environ
    settings = load_settings(config_file=paths.config_file)
    return ServiceSpec(
        program=program or agent_program(),
        paths=paths,
        cancel_grace_s=settings.cancel_grace_seconds,
        environment=carried_environment(env),
    )
