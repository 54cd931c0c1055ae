"""Running the service manager's commands (systemctl, launchctl, schtasks...).

Everything a service module runs goes through a ``Runner``, so the unit tests replace
it with a recording fake and the real one is tested against real child processes.
A command that is not installed is a result (``returncode=None``), not an exception:
``service install`` must still write the unit on a machine without the tool.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

COMMAND_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Ran:
    """What one command did: its exit code (None: not installed) and its output."""

    argv: tuple[str, ...]
    returncode: int | None
    output: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def missing(self) -> bool:
        return self.returncode is None

    def why(self) -> str:
        """The last line the command printed (its error), or its exit code."""
        if self.missing:
            return f"{self.argv[0]} is not installed"
        lines = [line.strip() for line in self.output.splitlines() if line.strip()]
        return lines[-1] if lines else f"{self.argv[0]} exited {self.returncode}"


class Runner(Protocol):
    def __call__(self, argv: Sequence[str]) -> Ran: ...


def run_command(argv: Sequence[str]) -> Ran:
    """Run ``argv`` without input; output and errors captured together."""
    if shutil.which(argv[0]) is None:
        return Ran(tuple(argv), None)
    try:
        done = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Ran(tuple(argv), -1, f"{argv[0]} did not answer within {COMMAND_TIMEOUT_S:.0f}s")
    except OSError as exc:
        return Ran(tuple(argv), -1, f"{argv[0]} could not be run: {exc.strerror}")
    return Ran(tuple(argv), done.returncode, done.stdout)
