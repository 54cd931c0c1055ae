"""The status API's server: uvicorn on 127.0.0.1 inside the agent's own event loop, and
``status.json`` (port and token) written while it listens.

The endpoints and the loopback-and-token guard are in ``status.routes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Generator, Mapping
from pathlib import Path
from typing import Any

import uvicorn

from training_agent.errors import StateError
from training_agent.status.file import StatusFile, new_token, this_process_created_at
from training_agent.status.routes import create_app
from training_agent.status.state import AgentState, Controller

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 2


class _LoopbackServer(uvicorn.Server):
    """uvicorn inside the agent's loop: no signal handlers (the daemon owns them), no
    0.1 s housekeeping tick (an idle agent should not wake ten times a second)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()
        self.stop_requested = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()

    async def main_loop(self) -> None:
        await self.stop_requested.wait()


class StatusApi:
    """The status API of one agent: ``start`` serves it and writes ``status.json``;
    ``stop`` removes the file and closes every connection.

        api = StatusApi(state=state, controller=daemon, status_path=paths.status_file)
        await api.start()
        try:
            ...
        finally:
            await api.stop()
    """

    def __init__(
        self,
        *,
        state: AgentState,
        controller: Controller,
        status_path: Path,
        metrics_without_token: bool = False,
        backlog: Callable[[], Mapping[str, int]] | None = None,
        usage: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self._state = state
        self._status_path = status_path
        self._token = new_token()
        self._closing = asyncio.Event()
        self._app = create_app(
            state=state,
            controller=controller,
            token=self._token,
            metrics_without_token=metrics_without_token,
            backlog=backlog,
            usage=usage,
            closing=self._closing,
        )
        self._server: _LoopbackServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None
        self.file: StatusFile | None = None

    async def start(self) -> StatusFile:
        """Listen on 127.0.0.1 and a free port, then write ``status.json``."""
        self._sock = sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self._app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http="h11",
            ws="none",
            server_header=False,
            date_header=False,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        )
        self._server = server = _LoopbackServer(config)
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="status-api")
        ready = asyncio.ensure_future(server.ready.wait())
        await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if self._task.done():
            self._task.result()  # raises what stopped it
            raise RuntimeError("the status API stopped while starting")
        self.file = StatusFile(
            pid=os.getpid(),
            pid_created_at=this_process_created_at(),
            port=port,
            token=self._token,
            agent_id=self._state.agent_id,
            version=self._state.version,
            started_at=time.time(),
        )
        self._warn_if_taken()
        self.file.write(self._status_path)
        log.info("status API on 127.0.0.1:%d (port and token in %s)", port, self._status_path)
        return self.file

    def _warn_if_taken(self) -> None:
        try:
            other = StatusFile.read(self._status_path)
        except StateError:
            return  # garbled: replaced below
        if other is not None and other.pid != os.getpid() and not other.is_stale():
            log.warning(
                "another agent (pid %d) uses the state directory %s; two agents must not "
                "share one: give each its own TRAINING_AGENT_HOME",
                other.pid,
                self._status_path.parent,
            )

    async def serve(self) -> None:
        """Serve until ``stop``; raises what ended the server otherwise.

        Run under ``supervise``, which calls it again: a server that died is started
        again on a new port, and ``status.json`` says which.
        """
        if self._closing.is_set():
            return
        if self._task is None or self._task.done():
            await self.start()
        task, server = self._task, self._server
        if task is None or server is None:
            raise RuntimeError("the status API did not start")
        await asyncio.wait({task})
        if server.stop_requested.is_set() or self._closing.is_set():
            return
        for listener in server.servers:  # a server that died did not close its socket
            listener.close()
        if self._sock is not None:
            self._sock.close()
        task.result()  # raises what stopped it
        raise RuntimeError("the status API stopped by itself")

    async def stop(self) -> None:
        """Remove ``status.json``, end the event streams, stop listening."""
        if self.file is not None:
            self.file.remove(self._status_path)
        self._closing.set()
        if self._server is None or self._task is None:
            return
        self._server.stop_requested.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), SHUTDOWN_GRACE_S + 3.0)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        except Exception as exc:  # the agent is stopping anyway; say why and go on
            log.warning("status API stopped with an error: %s", exc)


class _DaemonControl:
    """The daemon as a ``Controller``, for daemons that lack ``resume`` or ``cancel_job``:
    what is missing answers 501 instead of failing at start."""

    def __init__(self, daemon: Any) -> None:
        self._daemon = daemon

    def drain(self) -> None:
        self._daemon.drain()

    def resume(self) -> None:
        self._call("resume")

    def cancel_job(self, job_id: str, reason: str) -> bool:
        return bool(self._call("cancel_job", job_id, reason))

    def _call(self, name: str, *args: Any) -> Any:
        method = getattr(self._daemon, name, None)
        if method is None:
            raise NotImplementedError(f"this agent cannot {name.replace('_', ' ')} yet")
        return method(*args)


def controller_for(daemon: Any) -> Controller:
    """``daemon`` itself when it implements ``Controller``, else an adapter."""
    if all(callable(getattr(daemon, name, None)) for name in ("drain", "resume", "cancel_job")):
        controller: Controller = daemon
        return controller
    return _DaemonControl(daemon)


async def start_status_api(
    *,
    state: AgentState,
    daemon: Any,
    status_path: Path,
    outbox_path: Path | None = None,
    metrics_without_token: bool = False,
    usage: Callable[[], Mapping[str, Any]] | None = None,
) -> StatusApi | None:
    """Serve the status API for ``daemon``; None (and a warning) when it cannot start.

    The agent works without its status API, so a failure here never stops it.
    """
    from training_agent.status.metrics import outbox_backlog

    api = StatusApi(
        state=state,
        controller=controller_for(daemon),
        status_path=status_path,
        metrics_without_token=metrics_without_token,
        backlog=None if outbox_path is None else outbox_backlog(outbox_path),
        usage=usage,
    )
    try:
        await api.start()
    except Exception as exc:
        log.warning(
            "status API not started (training-agent status will not see this agent): %s", exc
        )
        await api.stop()
        return None
    return api
