"""What ``install`` keeps or changes in the agent's own files: its id and ``backend_url``.

Both read through ``service.owner.read_text`` (no FIFO hangs it) and write through
``write_private`` (a fresh temporary file renamed into place), so for a system service
they are safe to run as its user inside a directory that user's jobs can write to.
"""

from __future__ import annotations

import json
from pathlib import Path

from training_agent.errors import ConfigError
from training_agent.identity import AGENT_ID_RE
from training_agent.paths import AgentPaths
from training_agent.service.owner import read_text, write_private


def existing_agent_id(paths: AgentPaths) -> str | None:
    """The agent id an earlier install left, if it is a valid one."""
    try:
        value = (read_text(paths.agent_id_file) or "").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return value if AGENT_ID_RE.match(value) else None


def set_backend_url(path: Path, url: str) -> None:
    """Set ``backend_url`` in config.toml ``path`` and keep every other line as it was."""
    try:
        old = read_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise ConfigError(
            f"cannot read {path} ({why}); move it away (or fix it) and run install again"
        ) from exc
    lines = old.splitlines() if old is not None else []
    setting = f"backend_url = {json.dumps(url)}"
    kept = [line for line in lines if not line.strip().startswith("backend_url")]
    # Top-level keys must come before any [table]: put it first.
    try:
        write_private(path, "\n".join([setting, *kept]) + "\n")
    except OSError as exc:
        raise ConfigError(
            f"cannot write {path} ({exc.strerror or exc}); check that its directory is "
            "writable by the agent's user"
        ) from exc
