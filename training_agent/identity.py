"""Who this agent is: a stable agent id plus the host facts sent with every poll."""

from __future__ import annotations

import platform as _platform
import re
import secrets
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from training_agent import __version__
from training_agent.errors import StateError

AGENT_ID_RE = re.compile(r"^agent_[0-9a-f]{16}$")
# The FineTune Lab agent keeps its id here; adopting it keeps the agent's history.
LEGACY_AGENT_ID_FILE = Path.home() / ".finetunelab" / "agent_id"


@dataclass(frozen=True)
class AgentIdentity:
    """The values of the X-Agent-* headers."""

    agent_id: str
    hostname: str
    platform: str  # linux | darwin | windows (the backend's allowed values)
    version: str


def current_platform() -> str:
    """This OS as the protocol names it: ``linux``, ``darwin`` or ``windows``."""
    if sys.platform.startswith("win"):
        return "windows"
    if sys.platform == "darwin":
        return "darwin"
    return "linux"


def new_agent_id() -> str:
    return f"agent_{secrets.token_hex(8)}"


def load_or_create_agent_id(path: Path, *, legacy_path: Path | None = LEGACY_AGENT_ID_FILE) -> str:
    """Read the agent id stored at ``path``; create it once if missing or invalid.

    A valid id left by the FineTune Lab agent at ``legacy_path`` is adopted, so the
    platform keeps seeing the same agent after a switch.
    """
    stored = _read_id(path)
    if stored is not None:
        return stored
    agent_id = (_read_id(legacy_path) if legacy_path else None) or new_agent_id()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(agent_id + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise StateError(
            f"cannot write the agent id to {path} ({exc.strerror}); "
            "check that the state directory is writable"
        ) from exc
    return agent_id


def read_agent_id(path: Path) -> str | None:
    """The valid agent id stored at ``path``, or None; nothing is created."""
    return _read_id(path)


def _read_id(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise StateError(f"cannot read the agent id from {path} ({exc.strerror})") from exc
    return text if AGENT_ID_RE.match(text) else None


def detect_identity(agent_id: str) -> AgentIdentity:
    """The identity of this machine for ``agent_id``."""
    hostname = socket.gethostname() or _platform.node() or "unknown"
    return AgentIdentity(
        agent_id=agent_id, hostname=hostname, platform=current_platform(), version=__version__
    )
