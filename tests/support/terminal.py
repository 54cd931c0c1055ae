"""A real terminal for end-to-end tests of full-screen commands: tmux, read as a person
sees it (``capture-pane``) and typed into (``send-keys``)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.e2e import WAIT_S


def require_tmux() -> None:
    if shutil.which("tmux") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must install tmux (.ci/run) for the terminal tests")
        pytest.skip("tmux is not installed")


class Terminal:
    def __init__(self, session: str) -> None:
        self.session = session

    def screen(self) -> str:
        done = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", self.session],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout

    def press(self, *keys: str) -> None:
        for key in keys:  # one at a time: Esc followed at once by a key reads as Alt+key
            subprocess.run(["tmux", "send-keys", "-t", self.session, key], check=True)
            time.sleep(0.3)

    def type(self, text: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.session, "-l", text], check=True)

    def wait_for(self, text: str, timeout_s: float = WAIT_S) -> str:
        deadline = time.monotonic() + timeout_s
        while text not in (shown := self.screen()):
            if time.monotonic() > deadline:
                raise AssertionError(f"not on screen within {timeout_s:.0f}s: {text!r}\n{shown}")
            time.sleep(0.2)
        return shown


@contextmanager
def terminal(
    tmp_path: Path, command: Sequence[str], env: Mapping[str, str], size: tuple[int, int]
) -> Iterator[Terminal]:
    """Run ``command`` in a fresh tmux session of ``size``; the pane stays after it exits
    and shows ``EXITED <code>``."""
    require_tmux()
    script = tmp_path / f"term-{uuid.uuid4().hex[:8]}.sh"
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    script.write_text(
        f"{exports}{shlex.join(command)}\necho EXITED $?\nsleep 600\n", encoding="utf-8"
    )
    session = f"ta-{uuid.uuid4().hex[:10]}"
    width, height = size
    size_args = ["-x", str(width), "-y", str(height)]
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, *size_args, "sh", str(script)],
        check=True,
        env={**os.environ, "TERM": "xterm-256color"},
    )
    try:
        yield Terminal(session)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
