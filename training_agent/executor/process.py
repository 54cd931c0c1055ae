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
psutil does (GitHub's Actions runner sweeps orphans by ``RUNNER_TRACKING_ID`` the same way).
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

log = logging.getLogger(__name__)

TRACKING_ENV = "TRAINING_AGENT_TRACKING_ID"
# Under memory pressure the kernel should kill the trainer, not the agent that reports why.
OOM_SCORE_ADJ = 500
# After the leader exits, how long a descendant holding the pipes may keep them open.
DRAIN_S = 2.0
STREAMS = {1: "stdout", 2: "stderr"}

LineCallback = Callable[[str, str], None]
"""Called with the stream name (``"stdout"`` or ``"stderr"``) and one line."""


class _ChildProtocol(asyncio.SubprocessProtocol):
    """Turns pipe data into lines as it arrives, and notes the exit and closed pipes.

    Rejected: ``asyncio.create_subprocess_exec``, whose ``Process.wait()`` returns only
    once every pipe is closed, so a grandchild holding stdout would hold the job open.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, on_line: LineCallback) -> None:
        self._on_line = on_line
        self._splitters = {fd: LineSplitter() for fd in STREAMS}
        self.exited: asyncio.Future[None] = loop.create_future()
        self.pipes_closed = {fd: loop.create_future() for fd in STREAMS}

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        if isinstance(data, bytes) and fd in STREAMS:
            self._emit(fd, self._splitters[fd].feed(data))

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd in STREAMS and not self.pipes_closed[fd].done():
            self._emit(fd, self._splitters[fd].finish())
            self.pipes_closed[fd].set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def _emit(self, fd: int, lines: list[str]) -> None:
        for line in lines:
            try:
                self._on_line(STREAMS[fd], line)
            except Exception:
                # A broken callback must not stop the reading: the child would block
                # on a full pipe. Log it and go on.
                log.exception("line callback failed")


class ChildProcess:
    """A running child and its process group. Create it with ``await ChildProcess.start()``."""

    def __init__(
        self, transport: asyncio.SubprocessTransport, protocol: _ChildProtocol, tracking_id: str
    ) -> None:
        self._transport = transport
        self._protocol = protocol
        self.tracking_id = tracking_id
        self.pid = transport.get_pid()
        """The leader's process id (also its process group id on POSIX)."""
        self._identity = _process_or_none(self.pid)

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
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: _ChildProtocol(loop, on_line),
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
        _raise_oom_score(transport.get_pid())
        return cls(transport, protocol, tracking_id)

    @property
    def returncode(self) -> int | None:
        """None while running; the exit code, or ``-N`` when killed by signal N."""
        return self._transport.get_returncode()

    async def wait(self) -> int:
        """Wait for the leader to exit and its output to be read; return its returncode.

        Output still held open by a descendant ``DRAIN_S`` after the leader exited is
        abandoned: the job is over, and the caller's cleanup kills that descendant.
        """
        await asyncio.shield(self._protocol.exited)
        await self._drain(DRAIN_S)
        return self._exit_code()

    async def stop(self, grace_s: float) -> int:
        """The kill ladder: SIGTERM the group, wait up to ``grace_s``, kill the whole tree.

        Idempotent, and safe after the child exited by itself. Returns the returncode.
        """
        if self.returncode is None:
            self._terminate_group()
            await asyncio.wait([self._protocol.exited], timeout=grace_s)
        self.kill_tree()
        return await self.wait()

    async def reap(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for the exit after ``kill_tree()``, then stop reading."""
        await asyncio.wait([self._protocol.exited], timeout=timeout_s)
        await self._drain(0)

    def notify(self) -> None:
        """SIGUSR1 to the leader only (POSIX): "read your control file". No-op elsewhere.

        Only the leader: SIGUSR1 kills a process that does not handle it, and the other
        processes of the group never said they would.
        """
        if hasattr(signal, "SIGUSR1") and self.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signal.SIGUSR1)

    def kill_tree(self) -> None:
        """SIGKILL the leader, its group, its descendants and every tracked process, now."""
        victims: list[psutil.Process] = []
        # Descendants are listed before anything dies (orphans are re-parented and lost
        # to children()), and only while the leader is still ours: a reaped pid may
        # already belong to another process.
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
                self._transport.send_signal(signal.CTRL_BREAK_EVENT)
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGTERM)

    async def _drain(self, timeout_s: float) -> None:
        """Give the pipes ``timeout_s`` to reach end of file, then close our ends."""
        pending = [closed for closed in self._protocol.pipes_closed.values() if not closed.done()]
        if pending and timeout_s > 0:
            await asyncio.wait(pending, timeout=timeout_s)
        self._transport.close()  # after the exit this only closes the pipes

    def _exit_code(self) -> int:
        returncode = self.returncode
        if returncode is None:  # cannot happen after process_exited; keeps the type honest
            raise RuntimeError(f"pid {self.pid} has no returncode after its exit")
        return returncode


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
        log.debug("cannot raise oom_score_adj of pid %d: %s", pid, exc)
