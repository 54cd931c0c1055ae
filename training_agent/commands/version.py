"""What this agent build is: ``training-agent version``.

    training-agent 0.2.0
    commit    3f2a9c0d1e4b
    python    3.11.2 (CPython)
    platform  linux-amd64 (Linux-6.1.0-x86_64-with-glibc2.36)
    frozen    yes (one-folder executable)

The commit of a frozen build is baked in at build time (``_build.json``, written by
packaging/training-agent.spec); in a source tree it comes from git; otherwise it is
``unknown``.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from training_agent import __version__
from training_agent.identity import current_platform

BUILD_FILE = Path(__file__).parent.parent / "_build.json"  # beside training_agent/__init__.py
UNKNOWN = "unknown"
#: ``platform.machine()`` spellings of the two architectures we build for.
_ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True)
class BuildInfo:
    """One agent build as ``training-agent version`` shows it."""

    version: str
    commit: str
    python: str
    platform: str
    frozen: bool

    def lines(self) -> list[str]:
        """The text ``training-agent version`` prints."""
        frozen = "yes (one-folder executable)" if self.frozen else "no (running from Python)"
        return [
            f"training-agent {self.version}",
            f"commit    {self.commit}",
            f"python    {self.python}",
            f"platform  {self.platform}",
            f"frozen    {frozen}",
        ]


def is_frozen() -> bool:
    """True inside a PyInstaller executable."""
    return bool(getattr(sys, "frozen", False))


def current_arch() -> str:
    """``amd64`` or ``arm64`` (the release archives' names), else the machine's own name."""
    machine = platform.machine()
    return _ARCHES.get(machine.lower(), machine.lower() or UNKNOWN)


def build_info() -> BuildInfo:
    """This process's build."""
    python = f"{platform.python_version()} ({platform.python_implementation()})"
    where = f"{current_platform()}-{current_arch()} ({platform.platform()})"
    return BuildInfo(
        version=__version__, commit=commit(), python=python, platform=where, frozen=is_frozen()
    )


def commit() -> str:
    """The build's commit: baked in when frozen, from git in a source tree, else unknown."""
    baked = _baked_commit()
    if baked is not None:
        return baked
    source_root = Path(__file__).resolve().parents[2]  # above training_agent/commands/
    if not (source_root / ".git").exists():  # an installed wheel: no repository to ask
        return UNKNOWN
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=source_root,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else UNKNOWN


def _baked_commit() -> str | None:
    try:
        data = json.loads(BUILD_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get("commit") if isinstance(data, dict) else None
    return str(value)[:40] if value else None


def version_command() -> int:
    """Print the build; always exit 0."""
    print("\n".join(build_info().lines()))
    return 0
