"""systemd: a user service (the default), or a system service with a dedicated user.

User service: ``~/.config/systemd/user/training-agent.service``, driven with
``systemctl --user``; lingering (``loginctl enable-linger``) keeps it running after the
user logs out. System service (``--system``, root): ``/etc/systemd/system``, run as the
system user ``training-agent`` with everything under ``/var/lib/training-agent``, the
key in the owner-only credential file there (a system service has no keyring).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from training_agent.credentials import CREDENTIAL_FILE_NAME
from training_agent.errors import ServiceError
from training_agent.paths import AgentPaths
from training_agent.service.base import SERVICE_NAME, ServiceManager, ServiceState, ServiceStatus
from training_agent.service.owner import Owner, find_owner
from training_agent.service.templates import SYSTEMD_TEMPLATE, fill

UNIT_NAME = f"{SERVICE_NAME}.service"
SYSTEM_USER = "training-agent"
SYSTEM_HOME = Path("/var/lib/training-agent")
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")


def system_paths(home: Path = SYSTEM_HOME) -> AgentPaths:
    """Where a system service keeps everything: one directory its user owns."""
    return AgentPaths.under(home)


def user_unit_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    config = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return Path(config) / "systemd" / "user"


def reachable_by_others(program: Path) -> bool:
    """Whether a user other than the owner may run ``program`` (every parent has o+x)."""
    try:
        for path in {program, program.resolve()}:
            if not all(directory.stat().st_mode & 0o001 for directory in path.parents):
                return False
        return bool(program.stat().st_mode & 0o001)
    except OSError:
        return False


def quote(value: str, *, program: bool = False) -> str:
    """One systemd command-line word or assignment: quoted, ``%`` escaped, and ``$``
    escaped except in the program's own path, where systemd expands no variables."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return '"' + (escaped if program else escaped.replace("$", "$$")) + '"'


@dataclass
class SystemdService(ServiceManager):
    system: bool = False
    unit_dir: Path = field(default_factory=user_unit_dir)
    user: str = field(default_factory=getpass.getuser)

    @property
    def kind(self) -> str:
        return "systemd system service" if self.system else "systemd user service"

    @property
    def tool(self) -> str:
        return "systemctl"

    @property
    def unit_path(self) -> Path:
        return self.unit_dir / UNIT_NAME

    def render(self) -> str:
        identity = ""
        if self.system:
            identity = (
                f"User={SYSTEM_USER}\nGroup={SYSTEM_USER}\n"
                f"StateDirectory={SYSTEM_USER}\nStateDirectoryMode=0700\n"
                "NoNewPrivileges=yes\nPrivateTmp=yes\nProtectSystem=full\n"
            )
        environment = self.spec.environment.items()
        lines = "".join(f"Environment={quote(f'{k}={v}')}\n" for k, v in environment)
        return fill(
            SYSTEMD_TEMPLATE,
            scope="system" if self.system else "user",
            exec_start=" ".join(
                quote(word, program=index == 0)
                for index, word in enumerate(self.spec.argv("start"))
            ),
            environment=lines,
            identity=identity,
            stop_timeout_s=str(self.spec.stop_timeout_s),
            wanted_by="multi-user.target" if self.system else "default.target",
        )

    def _ctl(self, *args: str, check: bool = True) -> str:
        scope = () if self.system else ("--user",)
        return self.run(*scope, *args, check=check).output

    def register(self) -> None:
        self._ctl("daemon-reload")
        self._ctl("enable", UNIT_NAME)
        if not self.system:
            self.ensure_linger()

    def unregister(self) -> None:
        self._ctl("disable", "--now", UNIT_NAME)
        self._ctl("daemon-reload", check=False)

    def start(self) -> None:
        self._ctl("start", UNIT_NAME)

    def stop(self) -> None:
        self._ctl("stop", UNIT_NAME)

    def restart(self) -> None:
        self._ctl("restart", UNIT_NAME)

    def status(self) -> ServiceStatus:
        if not self.installed:
            return ServiceStatus(ServiceState.NOT_INSTALLED, f"no unit at {self.unit_path}")
        ran = self.run(
            *(() if self.system else ("--user",)),
            "show",
            "--property=ActiveState,SubState,ExecMainStatus",
            UNIT_NAME,
            check=False,
        )
        if not ran.ok:
            return ServiceStatus(ServiceState.UNKNOWN, f"systemctl cannot tell: {ran.why()}")
        shown = dict(line.split("=", 1) for line in ran.output.splitlines() if "=" in line)
        active = shown.get("ActiveState", "unknown")
        sub, code = shown.get("SubState", "?"), shown.get("ExecMainStatus", "?")
        detail = f"{active} ({sub}), last exit code {code}"
        state = ServiceState.RUNNING if active in ("active", "reloading") else ServiceState.STOPPED
        return ServiceStatus(state, detail)

    def logs_command(self, *, lines: int, follow: bool) -> list[str] | None:
        scope = [] if self.system else ["--user"]
        return ["journalctl", *scope, "--unit", UNIT_NAME, "--lines", str(lines)] + (
            ["--follow"] if follow else []
        )

    def prepare(self) -> None:
        """A system service: root, and its user."""
        if not self.system:
            return
        if hasattr(os, "geteuid") and os.geteuid() != 0:
            raise ServiceError("the system service needs root: run the command with sudo")
        self.create_system_user()
        program = Path(self.spec.program[0])
        if not reachable_by_others(program):
            self.say(
                f"training-agent: warning: the user {SYSTEM_USER} cannot reach {program}; "
                "install training-agent where every user can run it (e.g. the "
                "release folder under /opt) and run this again"
            )

    def owner(self) -> Owner | None:
        """The user a system service runs as, once it exists (None: a user service)."""
        return find_owner(SYSTEM_USER) if self.system else None

    def missing_key_file(self) -> Path | None:
        """A system service's key file when it does not exist yet (else None)."""
        key_file = self.spec.paths.config_dir / CREDENTIAL_FILE_NAME
        return key_file if self.system and not key_file.exists() else None

    def ensure_linger(self) -> None:
        """Let the user's services run while nobody is logged in, or say how to."""
        shown = self.runner(["loginctl", "show-user", self.user, "--property=Linger", "--value"])
        if shown.ok and shown.output.strip() == "yes":
            return
        enabled = self.runner(["loginctl", "enable-linger", self.user])
        if enabled.ok:
            self.say("Enabled lingering: the agent keeps running after you log out.")
            return
        self.say(
            "training-agent: the agent stops when you log out; to keep it running, run "
            f"'sudo loginctl enable-linger {self.user}' ({enabled.why()})"
        )

    def create_system_user(self) -> None:
        """The dedicated user a system service runs as (created once; root only)."""
        if self.runner(["getent", "passwd", SYSTEM_USER]).ok:
            return
        ran = self.runner(
            [
                "useradd", "--system", "--user-group", "--no-create-home",
                "--home-dir", str(SYSTEM_HOME), "--shell", "/usr/sbin/nologin", SYSTEM_USER,
            ]
        )  # fmt: skip
        if not ran.ok:
            raise ServiceError(
                f"cannot create the system user {SYSTEM_USER} ({ran.why()}); run the "
                "command as root (sudo), or use the user service"
            )

    def hand_over(self, home: Path) -> None:
        """Give the system service's directory to its user (it holds the key file)."""
        ran = self.runner(["chown", "-R", f"{SYSTEM_USER}:{SYSTEM_USER}", str(home)])
        if not ran.ok:
            raise ServiceError(f"cannot give {home} to {SYSTEM_USER} ({ran.why()}); run as root")
