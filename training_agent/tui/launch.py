"""Start ``training-agent start`` as a child of the dashboard: in its own session (the
terminal's signals do not reach it), its console output in ``console.log`` next to
``agent.log`` (a full-screen dashboard owns the terminal: nothing else may write to it)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

CONSOLE_LOG = "console.log"


def agent_command(args: Sequence[str]) -> list[str]:
    """The command line that runs this very agent with ``args``."""
    if getattr(sys, "frozen", False):  # the built executable is the agent
        return [sys.executable, *args]
    return [sys.executable, "-m", "training_agent", *args]


class SpawnedAgent:
    """An agent process the dashboard started."""

    def __init__(self, log_dir: Path, args: Sequence[str] = ("start",)) -> None:
        log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.console_log = log_dir / CONSOLE_LOG
        with self.console_log.open("wb") as out:  # replaced at each start
            self.process = subprocess.Popen(
                agent_command(args),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def exited(self) -> str | None:
        """None while it runs; else one sentence saying how it ended and where to look."""
        code = self.process.poll()
        if code is None:
            return None
        return f"the agent exited with code {code}; its output is in {self.console_log}"

    def stop(self) -> None:
        """Ask it to drain and stop (SIGTERM; a second one cancels its running jobs)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self) -> int:
        return self.process.wait()
