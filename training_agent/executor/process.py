"""Start and stop a job's child process; nothing here knows what a job is.

A child runs in its own process group (POSIX ``start_new_session``; Windows
``CREATE_NEW_PROCESS_GROUP``) with stdin closed, stdout and stderr piped separately and
read as lines, and an environment variable ``TRAINING_AGENT_TRACKING_ID`` that every
descendant inherits. Stopping is a ladder (``ChildProcess.stop``): SIGTERM to the group
(Windows: CTRL_BREAK_EVENT), a grace period to checkpoint, then SIGKILL to the group, to
every descendant, and to every process still carrying the tracking id, which finds
grandchildren that left the group with ``setsid``. ``kill_tracked`` is that last sweep on
its own; run it after every job.

Rejected: a Linux cgroup per job would contain a tree without any tracking, but needs
privileges or a systemd scope we cannot count on; the environment tag works everywhere
psutil does (Buildkite and GitHub's runner tag processes the same way).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from training_agent.errors import JobConfigError
from training_agent.executor.lines import LineSplitter

logger = logging.getLogger(__name__)

TRACKING_ENV = "TRAINING_AGENT_TRACKING_ID"
# Under memory pressure the kernel should kill the trainer, not the agent that reports why.
OOM_SCORE_ADJ = 500
READ_CHUNK_BYTES = 64 * 1024
# After the leader exits, how long a descendant holding the pipes may keep them open.
DRAIN_S = 2.0

LineCallback = Callable[[str, str], None]
"""Called with the stream name (``"stdout"`` or ``"stderr"``) and one line."""


class ChildProcess:
    """A running child and its process group. Create it with ``await ChildProcess.start()``."""

    def __init__(
        self, proc: asyncio.subprocess.Process, tracking_id: str, on_line: LineCallback
    ) -> None:
        self._proc = proc
        self.tracking_id = tracking_id
        self._on_line = on_line
        self._identity = _process_or_none(proc.pid)
        self._pumps = [
            asyncio.create_task(self._pump(name, stream))
            for name, stream in (("stdout", proc.stdout), ("stderr", proc.stderr))
            if stream is not None
        ]

    @classmethod
    async def start(
        cls,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        on_line: LineCallback,
    ) -> ChildProcess:
        """Start ``argv`` in ``cwd`` with exactly ``env`` plus a fresh tracking id.

        Raises ``JobConfigError`` when the command or the directory does not exist or
        cannot be executed.
        """
        if not argv:
            raise JobConfigError("cannot start the job: the command is empty")
        tracking_id = uuid.uuid4().hex
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                env={**env, TRACKING_ENV: tracking_id},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                **_new_group_options(),
            )
        except OSError as exc:
            raise JobConfigError(_start_error(argv[0], cwd, exc)) from exc
        _raise_oom_score(proc.pid)
        return cls(proc, tracking_id, on_line)

    @property
    def pid(self) -> int:
        """The leader's process id (also its process group id on POSIX)."""
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        """None while running; the exit code, or ``-N`` when killed by signal N."""
        return self._proc.returncode

    async def wait(self) -> int:
        """Wait for the leader to exit and its output to be read; return its returncode.

        Output still held open by a descendant ``DRAIN_S`` after the leader exited is
        abandoned: the job is over, and the caller's cleanup kills that descendant.
        """
        returncode = await self._proc.wait()
        await self._drain(DRAIN_S)
        return returncode

    async def stop(self, grace_s: float) -> int:
        """The kill ladder: SIGTERM the group, wait up to ``grace_s``, kill the whole tree.

        Idempotent, and safe after the child exited by itself. Returns the returncode.
        """
        if self.returncode is None:
            self._terminate_group()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._proc.wait(), grace_s)
        self.kill_tree()
        return await self.wait()

    async def reap(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for the exit after ``kill_tree()``, then stop reading."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._proc.wait(), timeout_s)
        await self._drain(0)

    def kill_tree(self) -> None:
        """SIGKILL the leader, its group, its descendants and every tracked process, now."""
        victims: list[psutil.Process] = []
        # Only while this is still our child: a reaped pid may already belong to another.
        if self._identity is not None and self._identity.is_running():
            with contextlib.suppress(psutil.Error):
                victims = [self._identity, *self._identity.children(recursive=True)]
        if sys.platform != "win32":
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        for victim in victims:
            with contextlib.suppress(psutil.Error):
                victim.kill()
        kill_tracked(self.tracking_id)

    def _terminate_group(self) -> None:
        if sys.platform == "win32":
            with contextlib.suppress(OSError):
                self._proc.send_signal(signal.CTRL_BREAK_EVENT)
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGTERM)

    async def _pump(self, name: str, stream: asyncio.StreamReader) -> None:
        splitter = LineSplitter()
        while chunk := await stream.read(READ_CHUNK_BYTES):
            self._emit(name, splitter.feed(chunk))
        self._emit(name, splitter.finish())

    def _emit(self, name: str, lines: list[str]) -> None:
        for line in lines:
            try:
                self._on_line(name, line)
            except Exception:
                # A broken callback must not stop the pipe from being read (the child
                # would block on a full pipe), so it is logged and the reading goes on.
                logger.exception("line callback failed for pid %d", self.pid)

    async def _drain(self, timeout_s: float) -> None:
        pending = [pump for pump in self._pumps if not pump.done()]
        if pending and timeout_s > 0:
            _, pending_set = await asyncio.wait(pending, timeout=timeout_s)
            pending = list(pending_set)
        for pump in pending:
            pump.cancel()


def kill_tracked(tracking_id: str) -> list[int]:
    """SIGKILL every process whose environment carries ``tracking_id``; return their pids.

    The orphan sweep: it finds descendants that changed session or whose parent died.
    Processes we may not inspect, and processes that vanish meanwhile, are skipped.
    """
    own_pid = os.getpid()
    killed: list[int] = []
    for proc in psutil.process_iter():
        if proc.pid == own_pid:
            continue
        try:
            if proc.environ().get(TRACKING_ENV) == tracking_id:
                proc.kill()
                killed.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return killed


def _new_group_options() -> dict[str, Any]:
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def _start_error(command: str, cwd: Path, exc: OSError) -> str:
    # asyncio does not say which of the two was missing (subprocess.Popen would).
    if isinstance(exc, FileNotFoundError) and not cwd.is_dir():
        return f"cannot start the job: working directory not found: {cwd}"
    if isinstance(exc, FileNotFoundError):
        return f"cannot start the job: command not found: {command}"
    if isinstance(exc, PermissionError):
        return f"cannot start the job: command is not executable: {command}"
    return f"cannot start the job: {command}: {exc.strerror or exc}"


def _process_or_none(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def _raise_oom_score(pid: int) -> None:
    """Best effort: make the child the OOM killer's first choice (Linux only)."""
    if sys.platform != "linux":
        return
    path = Path(f"/proc/{pid}/oom_score_adj")
    try:
        if int(path.read_text()) < OOM_SCORE_ADJ:
            path.write_text(f"{OOM_SCORE_ADJ}\n")
    except (OSError, ValueError) as exc:
        logger.debug("cannot raise oom_score_adj of pid %d: %s", pid, exc)
