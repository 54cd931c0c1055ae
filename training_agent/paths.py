"""Every place on disk the agent reads or writes, in one object.

By default the locations come from platformdirs (app name ``training-agent``). Setting
``TRAINING_AGENT_HOME=DIR`` puts all of them under DIR instead, which tests and several
agents on one machine use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "training-agent"
HOME_ENV = "TRAINING_AGENT_HOME"


@dataclass(frozen=True)
class AgentPaths:
    """The agent's directories; the named files live inside them."""

    config_dir: Path  # config.toml, the fallback credential file
    state_dir: Path  # agent_id, outbox.sqlite3, jobs/<id>/journal.json, status.json
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
    def log_file(self) -> Path:
        return self.log_dir / "agent.log"

    def ensure(self) -> None:
        """Create the directories the daemon writes to, owner-only."""
        for path in (self.config_dir, self.state_dir, self.log_dir, self.data_dir):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
