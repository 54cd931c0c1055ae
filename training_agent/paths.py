"""Every place on disk the agent reads or writes, in one object, and how it keeps them
owner-only.

By default the locations come from platformdirs (app name ``training-agent``). Setting
``TRAINING_AGENT_HOME=DIR`` puts all of them under DIR instead, which tests and several
agents on one machine use.

Whatever holds job data, tokens or reports is owner-only: directories 0700 (every level
the agent creates, not only the last one), files 0600; ``ensure`` narrows the agent's
directories at each start when an older version or a umask left them wider.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from training_agent.errors import StateError

APP_NAME = "training-agent"
HOME_ENV = "TRAINING_AGENT_HOME"
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def narrow(path: Path, mode: int) -> bool:
    """Set ``path`` to ``mode`` when group or others have any access to it (POSIX only);
    True when it did. A missing path or a symbolic link is left alone."""
    if os.name != "posix":
        return False  # Windows keeps access in ACLs; its mode bits mean little
    try:
        current = path.lstat().st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(current) or not stat.S_IMODE(current) & 0o077:
        return False
    path.chmod(mode)
    return True


def private_dir(path: Path) -> bool:
    """Make ``path`` and its missing parents owner-only directories (0700), and narrow
    ``path`` when it exists and is wider; True when it narrowed one.

    ``mkdir(parents=True, mode=0o700)`` would not do: it gives the parents it creates
    the umask's mode (0755), and its own mode is filtered by the umask too.
    """
    missing: list[Path] = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(mode=PRIVATE_DIR, exist_ok=True)
        directory.chmod(PRIVATE_DIR)
    return not missing and narrow(path, PRIVATE_DIR)


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``, owner-only (0600) even when the file was there, wider."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    try:
        narrow(path, PRIVATE_FILE)
        os.write(fd, data)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class AgentPaths:
    """The agent's directories; the named files live inside them."""

    config_dir: Path  # config.toml, the fallback credential file
    state_dir: Path  # agent_id, outbox.sqlite3, status.json; jobs/<id>/journal.json
    log_dir: Path  # agent.log
    data_dir: Path  # jobs/<id>/ work dirs, checkpoints, outputs
    cache_dir: Path  # downloaded datasets
    isolated: bool = False  # True under TRAINING_AGENT_HOME: nothing outside it is read

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AgentPaths:
        env = os.environ if environ is None else environ
        home = env.get(HOME_ENV)
        if home:
            return cls.under(Path(home).expanduser())
        dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
        return cls(
            config_dir=Path(dirs.user_config_dir),
            state_dir=Path(dirs.user_state_dir),
            log_dir=Path(dirs.user_log_dir),
            data_dir=Path(dirs.user_data_dir),
            cache_dir=Path(dirs.user_cache_dir),
        )

    @classmethod
    def under(cls, home: Path) -> AgentPaths:
        """Every location under one directory."""
        return cls(
            config_dir=home / "config",
            state_dir=home / "state",
            log_dir=home / "logs",
            data_dir=home / "data",
            cache_dir=home / "cache",
            isolated=True,
        )

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def agent_id_file(self) -> Path:
        return self.state_dir / "agent_id"

    @property
    def outbox_file(self) -> Path:
        return self.state_dir / "outbox.sqlite3"

    @property
    def status_file(self) -> Path:
        """Port, token and pid of the running agent's status API (0600)."""
        return self.state_dir / "status.json"

    @property
    def jobs_dir(self) -> Path:
        """Per-job work directories (data dir)."""
        return self.data_dir / "jobs"

    @property
    def journals_dir(self) -> Path:
        """Per-job journals (state dir)."""
        return self.state_dir / "jobs"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "agent.log"

    def ensure(self) -> list[Path]:
        """Create the directories the daemon writes to, owner-only (0700); the ones that
        existed wider and were narrowed. Raises ``StateError`` when one cannot be made so."""
        private = (
            self.config_dir,
            self.state_dir,
            self.journals_dir,
            self.log_dir,
            self.data_dir,
            self.jobs_dir,
            self.cache_dir,
        )
        narrowed: list[Path] = []
        for path in private:
            try:
                if private_dir(path):
                    narrowed.append(path)
            except OSError as exc:
                raise StateError(
                    f"cannot make the agent's directory {path} owner-only ({exc.strerror or exc}); "
                    "check that it belongs to the user the agent runs as"
                ) from exc
        return narrowed
