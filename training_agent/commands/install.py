"""``training-agent install`` and ``uninstall``: the flow behind every platform's installer.

Inputs, first found wins: flags (``--backend-url``, ``--api-key-stdin``), the environment
(``BACKEND_URL``, ``API_KEY``), ``training-agent.enroll.json`` next to the executable (a
key, or an enrollment token traded for one: ``enrollment.py``), a prompt. Everything is
checked before anything is written: the URL's shape, the key's shape, and one poll
that the backend must accept. Only then the key goes to the
credential store, ``backend_url`` to config.toml (0600, never the key) and a launcher to
``~/.local/bin`` (Windows: a ``.cmd`` in a per-user directory on PATH), and the
background service is installed and started (``--service user|system|none``). Re-running
it upgrades in place: every file the agent owns is kept. ``uninstall`` removes the
service and the launcher; ``--purge`` also the key, config, state, logs, data.

``--service system`` runs as root but touches the service's home as the service's user
(``service.owner``): every job runs as that user and may have planted links there, so
root never reads or writes through them.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from pydantic import SecretStr

from training_agent.api import BackendClient
from training_agent.commands.agent_files import existing_agent_id, set_backend_url
from training_agent.commands.enrollment import (
    ENROLL_FILE_NAME as ENROLL_FILE_NAME,
)
from training_agent.commands.enrollment import (
    Enroller,
    EnrollmentFile,
    read_enrollment_file,
)
from training_agent.credentials import CredentialStore, StorePreference, check_api_key_shape
from training_agent.errors import (
    AgentOutdatedError,
    AuthError,
    ConfigError,
    CredentialError,
    HttpStatusError,
    TrainingAgentError,
    TransportError,
)
from training_agent.identity import detect_identity, new_agent_id
from training_agent.paths import AgentPaths
from training_agent.service import ServiceManager, service_manager
from training_agent.service.install_step import ServiceStep
from training_agent.service.launcher import (
    LAUNCHER_MARK,
    add_to_user_path,
    bin_dir,
    launcher_name,
    render_cmd,
    render_sh,
)
from training_agent.service.owner import (
    Owner,
    acting_as,
    make_home,
    write_private,
)
from training_agent.service.shell import Runner, run_command
from training_agent.service.spec import agent_program
from training_agent.service.systemd import SystemdService

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


@dataclass(frozen=True)
class InstallOptions:
    backend_url: str | None = None
    api_key: SecretStr | None = None  # given by a caller that asked for it (the setup screen)
    api_key_stdin: bool = False
    yes: bool = False
    service: str = "user"
    credential_store: StorePreference = "auto"


@dataclass
class Installer:
    """One install or uninstall; every outside effect is injectable for tests."""

    paths: AgentPaths
    environ: Mapping[str, str]
    stdin: TextIO
    out: TextIO
    bin_dir: Path
    executable_dir: Path
    prompt: Callable[[str], str] = input
    secret_prompt: Callable[[str], str] = getpass.getpass
    platform: str = sys.platform
    runner: Runner = run_command  # what the service step runs systemctl & co. with
    services: Callable[..., ServiceManager] = service_manager

    @classmethod
    def for_this_process(cls) -> Installer:
        executable = Path(sys.executable if getattr(sys, "frozen", False) else sys.argv[0])
        return cls(
            paths=AgentPaths.from_env(),
            environ=os.environ,
            stdin=sys.stdin,
            out=sys.stderr,
            bin_dir=bin_dir(),
            executable_dir=executable.resolve().parent,
        )

    @property
    def launcher(self) -> Path:
        return self.bin_dir / launcher_name(self.platform)

    def say(self, line: str) -> None:
        print(line, file=self.out)

    # -- install ----------------------------------------------------------------------

    def install(self, options: InstallOptions) -> int:
        enroll = read_enrollment_file(self.executable_dir)
        self._check_launcher_is_ours()
        system = None  # or, with --service system, the service whose directory is used
        if options.service == "system":
            system = self.service_step.system_service(self.paths)
            self.paths = system.spec.paths
        with acting_as(system.owner() if system is not None else None):
            agent_id = existing_agent_id(self.paths) or new_agent_id()
        enroller = self._enroller(options, enroll)
        if enroller is not None:
            enrolled = enroller.enroll(
                options.backend_url or self.environ.get("BACKEND_URL"), agent_id
            )
            url, key = enrolled.backend_url, enrolled.api_key
        else:
            url, key = self._url_and_key(options, enroll)
        validate_key(url, key, agent_id)  # 401/403/unreachable: nothing written yet
        owner = None
        if system is not None:
            system.prepare()
            owner = system.owner()
            self._prepare_home(system, owner)
        with acting_as(owner):
            saved = self._write_agent_files(url, key, agent_id, system, options)
        self._write_launcher()
        self.say(f"The backend accepted the key; it is stored in the {saved}.")
        if enroller is not None:
            enroller.remove_file()
            self.say(f"The agent is online: the Training Agent page shows it as {agent_id}.")
        self.say(f"Settings: {self.paths.config_file}")
        self.say(f"Command: {self.launcher}")
        self.service_step.install(self.paths, options.service, system)
        self.say("Watch it with: training-agent status  (or: training-agent dashboard)")
        return 0

    def _prepare_home(self, system: SystemdService, owner: Owner | None) -> None:
        """The system service's home exists and is its user's (root's last act there)."""
        home = self.paths.config_dir.parent
        try:
            make_home(home, owner)
        except OSError as exc:
            raise ConfigError(f"cannot create {home}: {exc.strerror or exc}") from exc
        system.hand_over(home)

    def _write_agent_files(
        self,
        url: str,
        key: str,
        agent_id: str,
        system: SystemdService | None,
        options: InstallOptions,
    ) -> str:
        """The directories, agent id, key and config.toml; the store the key went to."""
        try:
            self.paths.ensure()
            if existing_agent_id(self.paths) is None:
                write_private(self.paths.agent_id_file, agent_id + "\n")
        except OSError as exc:
            raise ConfigError(
                f"cannot create the agent's directories ({exc.strerror}: {exc.filename}); "
                "check that your home directory is writable"
            ) from exc
        store = CredentialStore(
            self.paths.config_dir,
            prefer="file" if system is not None else options.credential_store,
            warn=lambda line: self.say(f"training-agent: {line}"),
        )
        saved = store.save(url, key)
        set_backend_url(self.paths.config_file, url)
        return saved.store

    @property
    def service_step(self) -> ServiceStep:
        return ServiceStep(self.services, self.platform, self.runner, self.say, self.environ)

    def enrollment(self) -> EnrollmentFile | None:
        """What ``training-agent.enroll.json`` next to the executable says, if it exists."""
        return read_enrollment_file(self.executable_dir)

    def _enroller(self, options: InstallOptions, enroll: EnrollmentFile | None) -> Enroller | None:
        """The enrollment step, when the file has a token and no key came from flags/env."""
        key_given = (
            options.api_key is not None or options.api_key_stdin or self.environ.get("API_KEY")
        )
        if enroll is None or enroll.token is None or enroll.api_key or key_given:
            return None
        if options.credential_store == "keyring":  # the token is single use: check first
            _backend, problem = CredentialStore(self.paths.config_dir).keyring_backend()
            if problem is not None:
                raise CredentialError(
                    f"cannot use the OS keyring: {problem}; set one up, or use "
                    "--credential-store file (the enrollment token was not used)"
                )
        interactive = not options.yes and self.stdin.isatty()
        return Enroller(
            enroll,
            say=self.say,
            ask=self.prompt if interactive else None,
            check_url=check_backend_url,
        )

    def _url_and_key(
        self, options: InstallOptions, enroll: EnrollmentFile | None
    ) -> tuple[str, str]:
        url = check_backend_url(
            options.backend_url
            or self.environ.get("BACKEND_URL")
            or (enroll and enroll.backend_url)
            or self._ask(options, "Backend URL (e.g. https://app.example.com): "),
            warn=self.say,
        )
        return url, check_api_key_shape(self._api_key(options, enroll))

    def _api_key(self, options: InstallOptions, enroll: EnrollmentFile | None) -> str:
        if options.api_key is not None:
            return options.api_key.get_secret_value()
        if options.api_key_stdin:
            return self.stdin.readline()
        from_env = self.environ.get("API_KEY") or (enroll and enroll.api_key)
        if from_env:
            return from_env
        if options.yes or not self.stdin.isatty():
            raise CredentialError(
                "no API key: pipe it in with --api-key-stdin or set API_KEY (the platform's "
                "Training Agent page shows it)"
            )
        return self.secret_prompt("API key (hidden): ")

    def _ask(self, options: InstallOptions, question: str) -> str:
        if options.yes or not self.stdin.isatty():
            raise ConfigError(
                "no backend URL: give --backend-url or set BACKEND_URL to your platform's address"
            )
        return self.prompt(question)

    def _check_launcher_is_ours(self) -> None:
        if self.launcher.is_symlink() or not self.launcher.exists():
            return
        try:
            ours = LAUNCHER_MARK in self.launcher.read_text(encoding="utf-8", errors="replace")
        except OSError:
            ours = False
        if not ours:
            raise ConfigError(
                f"{self.launcher} exists and was not written by training-agent; move it "
                "away and run install again"
            )

    def _write_launcher(self) -> None:
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        if self.launcher.is_symlink():
            self.launcher.unlink()
        program = agent_program()
        if self.platform == "win32":
            self.launcher.write_text(render_cmd(program, self.environ), encoding="utf-8")
            if add_to_user_path(self.bin_dir):
                self.say(f"Added {self.bin_dir} to your PATH (new terminals see it).")
            return
        if getattr(sys, "frozen", False):  # the executable: link its stable path
            self.launcher.symlink_to(Path(program[0]))
            return
        self.launcher.write_text(render_sh(program, self.environ), encoding="utf-8")
        self.launcher.chmod(0o755)

    # -- uninstall ----------------------------------------------------------------------

    def uninstall(self, *, purge: bool, backend_url: str | None) -> int:
        service_dirs = self.service_step.remove(self.paths)
        if self.launcher.is_symlink() or (
            self.launcher.exists() and LAUNCHER_MARK in self.launcher.read_text(errors="replace")
        ):
            self.launcher.unlink()
            self.say(f"Removed {self.launcher}.")
        if not purge:
            self.say("Kept the settings, the stored key, state and logs (--purge removes them).")
            return 0
        url = backend_url or self.environ.get("BACKEND_URL") or _configured_url(self.paths)
        if url:
            removed = CredentialStore(self.paths.config_dir).delete(url)
            if removed:
                self.say(f"Removed the API key from {', '.join(removed)}.")
        for directory in (
            *service_dirs,
            self.paths.config_dir,
            self.paths.state_dir,
            self.paths.log_dir,
            self.paths.data_dir,
            self.paths.cache_dir,
        ):
            if directory.exists():
                shutil.rmtree(directory)
                self.say(f"Removed {directory}.")
        return 0


def check_backend_url(value: str, *, warn: Callable[[str], None]) -> str:
    """The URL without trailing slash; one sentence when it cannot be a backend URL."""
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"the backend URL {value.strip()!r} must start with https:// (or http:// for "
            "a backend on this machine), e.g. https://app.example.com"
        )
    if parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS:
        warn(
            f"training-agent: warning: {url} is not encrypted (http://); the API key "
            "crosses the network in clear: use https:// unless this is a trusted network"
        )
    return url


def validate_key(url: str, key: str, agent_id: str) -> None:
    """One poll with the key; one sentence when the backend refuses it or cannot be reached."""

    async def poll() -> None:
        async with BackendClient(
            base_url=url, api_key=key, identity=detect_identity(agent_id), timeout_s=15
        ) as client:
            await client.poll()

    try:
        asyncio.run(poll())
    except AgentOutdatedError:
        raise  # its sentence says where to download the version the backend accepts
    except AuthError as exc:
        raise CredentialError(
            f"the backend refused the API key ({exc.status}): create a key with the "
            "'training' scope on the platform's Training Agent page and try again"
        ) from exc
    except TransportError as exc:
        raise ConfigError(
            f"cannot reach {url}: check the address and your network (or proxy) settings"
        ) from exc
    except HttpStatusError as exc:
        raise ConfigError(
            f"{url} answered {exc.status} to the agent's poll: is this the platform's address?"
        ) from exc
    except TrainingAgentError as exc:
        raise ConfigError(f"{url} does not look like a training platform: {exc}") from exc


def _configured_url(paths: AgentPaths) -> str | None:
    from training_agent.config import load_settings

    try:
        return load_settings(config_file=paths.config_file).backend_url
    except ConfigError:
        return None
