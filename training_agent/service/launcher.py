"""The ``training-agent`` command ``install`` puts on the user's PATH.

Linux and macOS: ``~/.local/bin/training-agent``, a link to the executable (its stable path) or a
small sh script running this Python. Windows: ``training-agent.cmd`` in
``%LOCALAPPDATA%\\Programs\\training-agent``, a directory added to the user's PATH
(HKCU\\Environment: no elevation).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from training_agent.paths import HOME_ENV

LAUNCHER_MARK = "training-agent launcher (written by 'training-agent install')"


def bin_dir(platform: str = sys.platform, environ: Mapping[str, str] | None = None) -> Path:
    """The per-user directory on PATH the launcher goes to."""
    env = os.environ if environ is None else environ
    if platform == "win32":
        local = env.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(local) / "Programs" / "training-agent"
    return Path.home() / ".local" / "bin"


def launcher_name(platform: str = sys.platform) -> str:
    return "training-agent.cmd" if platform == "win32" else "training-agent"


def render_sh(program: tuple[str, ...], environ: Mapping[str, str]) -> str:
    """A POSIX sh launcher: ``TRAINING_AGENT_HOME`` as at install time, then the agent."""
    lines = ["#!/bin/sh", f"# {LAUNCHER_MARK}"]
    if environ.get(HOME_ENV):
        lines.append(f"export {HOME_ENV}={sh_quote(environ[HOME_ENV])}")
    lines.append("exec " + " ".join(sh_quote(word) for word in program) + ' "$@"')
    return "\n".join(lines) + "\n"


def render_cmd(program: tuple[str, ...], environ: Mapping[str, str]) -> str:
    """A Windows batch launcher with the same meaning as :func:`render_sh`."""
    lines = ["@echo off", f"rem {LAUNCHER_MARK}"]
    if environ.get(HOME_ENV):
        lines.append(f'set "{HOME_ENV}={environ[HOME_ENV]}"')
    lines.append(subprocess.list2cmdline(list(program)) + " %*")
    return "\r\n".join(lines) + "\r\n"


def sh_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def add_to_user_path(directory: Path) -> bool:
    """Windows: append ``directory`` to the user's PATH (new terminals see it); True if
    it was added. Elsewhere, and when it is there already: False."""
    if sys.platform != "win32":
        return False
    import winreg

    with winreg.OpenKey(winreg.HKEY_CURRENT_USER, "Environment", 0, winreg.KEY_ALL_ACCESS) as key:
        try:
            current, kind = winreg.QueryValueEx(key, "Path")
        except FileNotFoundError:
            current, kind = "", winreg.REG_EXPAND_SZ
        entries = [entry for entry in str(current).split(";") if entry]
        if str(directory) in entries:
            return False
        winreg.SetValueEx(key, "Path", 0, kind, ";".join([*entries, str(directory)]))
    return True
