"""What every platform's service does, and the words it uses when its tool is missing."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from training_agent.errors import ServiceError
from training_agent.service.shell import Ran, Runner, run_command
from training_agent.service.spec import ServiceSpec

SERVICE_NAME = "training-agent"


class ServiceState(enum.Enum):
    RUNNING = "running"  # the service manager runs the agent
    STOPPED = "stopped"  # installed, not running (stopped, failed, or not started yet)
    NOT_INSTALLED = "not installed"  # no unit, plist or task
    UNKNOWN = "unknown"  # installed, but the service manager cannot be asked


@dataclass(frozen=True)
class ServiceStatus:
    state: ServiceState
    detail: str  # one line: what the service manager said


@dataclass
class ServiceManager(ABC):
    """One platform's service: render, install, start, stop, status, uninstall."""

    spec: ServiceSpec
    runner: Runner = run_command
    say: Callable[[str], None] = print

    encoding = "utf-8"  # of the written unit

    @property
    def kind(self) -> str:
        """What it is called in messages, e.g. "systemd user service"."""
        return "service"

    @property
    @abstractmethod
    def tool(self) -> str:
        """The command this platform's service manager is driven with."""

    @property
    @abstractmethod
    def unit_path(self) -> Path:
        """Where the unit, plist or task definition is written."""

    @abstractmethod
    def render(self) -> str:
        """The unit, plist or task XML for :attr:`spec`."""

    @abstractmethod
    def register(self) -> None:
        """Tell the service manager about the written unit (enable; load)."""

    @abstractmethod
    def unregister(self) -> None:
        """Stop the service and make the service manager forget it."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    @abstractmethod
    def restart(self) -> None: ...

    @abstractmethod
    def status(self) -> ServiceStatus: ...

    def logs_command(self, *, lines: int, follow: bool) -> list[str] | None:
        """The command that shows the service's log, or None: read the agent's log file."""
        return None

    # -- shared steps -----------------------------------------------------------------

    @property
    def installed(self) -> bool:
        return self.unit_path.exists()

    def install(self) -> bool:
        """Write the unit and register it; False (and one sentence said) when the
        service manager cannot be used here, the unit being written all the same."""
        self.write_unit()
        try:
            self.register()
        except ServiceError as exc:
            self.say(f"training-agent: {exc}")
            return False
        return True

    def prepare(self) -> None:  # noqa: B027 - a hook: only a system service needs one
        """What must exist before the unit is written (``service install``)."""

    def activate(self) -> None:
        """Run the newly installed (or upgraded) definition: restart it."""
        self.restart()

    def write_unit(self) -> None:
        text = self.render()
        try:
            self.unit_path.parent.mkdir(parents=True, exist_ok=True)
            self.unit_path.write_text(text, encoding=self.encoding)
            # Owner-only: a proxy URL carried over may hold a password.
            self.unit_path.chmod(0o600)
        except OSError as exc:
            raise ServiceError(
                f"cannot write {self.unit_path} ({exc.strerror}); check that the "
                "directory is writable (a system service needs root)"
            ) from exc
        self.say(f"Wrote the {self.kind}: {self.unit_path}")

    def uninstall(self) -> bool:
        """Stop, unregister and delete the unit; False when there was none."""
        if not self.installed:
            return False
        try:
            self.unregister()
        except ServiceError as exc:
            self.say(f"training-agent: {exc}")
        self.unit_path.unlink(missing_ok=True)
        self.say(f"Removed the {self.kind}: {self.unit_path}")
        return True

    def run(self, *args: str, check: bool = True) -> Ran:
        """Run the service manager's tool; with ``check``, a failure is a ServiceError."""
        ran = self.runner([self.tool, *args])
        if check and not ran.ok:
            raise ServiceError(self.failure_sentence(ran))
        return ran

    def failure_sentence(self, ran: Ran) -> str:
        if ran.missing:
            return (
                f"{self.tool} is not available on this machine, so the {self.kind} cannot be "
                f"started; the definition is in {self.unit_path}: run 'training-agent start' "
                "in a terminal (or under your own service manager) instead"
            )
        return (
            f"'{' '.join(ran.argv)}' failed ({ran.why()}); the definition is in "
            f"{self.unit_path}: run 'training-agent start' in a terminal meanwhile"
        )
