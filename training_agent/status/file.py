"""``status.json``: how local readers find a running agent's status API.

The daemon writes it when its status API listens and removes it at a clean exit:

    {"pid": 4242, "pid_created_at": 1732530000.12, "port": 48213,
     "token": "<43 url-safe characters>", "url": "http://127.0.0.1:48213",
     "agent_id": "agent_…", "version": "0.1.0", "started_at": 1732530001.5}

It holds the bearer token, so it is created owner-only (0600) and replaced atomically
(a temporary file in the same directory, then ``os.replace``): a reader never sees half
a file, and never a moment where others could read it. After a crash or SIGKILL the
file stays behind; ``is_stale`` tells from the pid (and the process's start time, in
case the pid was reused) that nobody answers there.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from training_agent.errors import StateError

FILE_NAME = "status.json"
TOKEN_BYTES = 32
# A process that started more than this after the file's pid did is another process.
_START_TIME_SLACK_S = 1.0


def new_token() -> str:
    """A random bearer token: 32 bytes, url-safe base64 (43 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


@dataclass(frozen=True)
class StatusFile:
    """The contents of ``status.json``."""

    pid: int
    pid_created_at: float | None
    port: int
    token: str
    agent_id: str
    version: str
    started_at: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write(self, path: Path) -> None:
        """Write atomically, mode 0600; raises ``StateError``."""
        data = json.dumps({**asdict(self), "url": self.url}, indent=2) + "\n"
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # mkstemp creates the file 0600 before anything is written into it.
            fd, tmp = tempfile.mkstemp(prefix=".status-", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise StateError(f"cannot write {path}: {exc}") from exc

    @classmethod
    def read(cls, path: Path) -> StatusFile | None:
        """The file's contents; None when it does not exist. Raises ``StateError``."""
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read {path}: {exc}") from exc
        try:
            data: Any = json.loads(raw)
            return cls(
                pid=int(data["pid"]),
                pid_created_at=(
                    None if data.get("pid_created_at") is None else float(data["pid_created_at"])
                ),
                port=int(data["port"]),
                token=str(data["token"]),
                agent_id=str(data["agent_id"]),
                version=str(data["version"]),
                started_at=float(data["started_at"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise StateError(
                f"{path} is not a status file the agent wrote ({exc}); delete it if no "
                "agent is running"
            ) from exc

    def is_stale(self) -> bool:
        """True when the process that wrote the file is gone (or the pid was reused)."""
        try:
            process = psutil.Process(self.pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
            created = process.create_time()
        except psutil.NoSuchProcess:  # ZombieProcess included
            return True
        except psutil.Error:
            return False  # it exists but we may not look at it: assume it is the agent
        if self.pid_created_at is None:
            return False
        return abs(created - self.pid_created_at) > _START_TIME_SLACK_S

    def remove(self, path: Path) -> None:
        """Delete ``path`` if it is still this file (another agent may have replaced it)."""
        with contextlib.suppress(OSError, StateError):
            current = StatusFile.read(path)
            if current is not None and current.token == self.token:
                path.unlink()


def this_process_created_at() -> float | None:
    try:
        return psutil.Process(os.getpid()).create_time()
    except psutil.Error:
        return None
