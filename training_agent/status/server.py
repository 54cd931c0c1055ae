"""The local status API: what the agent is doing, for ``status``, the dashboard and Prometheus.

Loopback HTTP on 127.0.0.1 and a random free port, served by uvicorn inside the agent's
own event loop. Every request needs ``Authorization: Bearer <token>``; the port and the
token are in ``status.json`` in the state dir (mode 0600, see ``status.file``), so only
the agent's own user can talk to it.

| endpoint | answer |
|---|---|
| ``GET /v1/status`` | ``AgentState.snapshot()`` |
| ``GET /v1/events`` | server-sent events (below) |
| ``GET /v1/jobs/{id}`` | one running or recent job |
| ``GET /v1/jobs/{id}/metrics`` | its metric history for a chart |
| ``GET /v1/jobs/{id}/log?tail=N`` | its last log lines |
| ``GET /v1/resources`` | the machine's load now (``status.usage``): CPU, RAM, GPUs, disk |
| ``POST /v1/jobs/{id}/cancel`` | cancel a running job (404 when it is not running) |
| ``POST /v1/drain``, ``POST /v1/resume`` | stop / start claiming new jobs |
| ``GET /metrics`` | Prometheus text format (token needed unless ``metrics_without_token``) |

The event stream is described in ``status.events``.

Errors are ``{"error": "<sentence>", "code": "<CODE>"}`` like the backend's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Generator, Mapping
from pathlib import Path
from typing import Any

import uvicorn
from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from training_agent.errors import StateError
from training_agent.status.events import COALESCE_S, KEEPALIVE_S, EventStream
from training_agent.status.file import StatusFile, new_token, this_process_created_at
from training_agent.status.metrics import AgentCollector, registry_for
from training_agent.status.state import AgentState, Controller

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 2
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def _error(status: int, code: str, sentence: str) -> JSONResponse:
    return JSONResponse({"error": sentence, "code": code}, status_code=status)


class _Guard:
    """ASGI middleware: loopback clients with a loopback Host and the bearer token only.

    The Host check stops DNS rebinding (a web page whose name resolves to 127.0.0.1);
    the token check is a constant-time comparison.
    """

    def __init__(self, app: ASGIApp, *, token: str, open_paths: frozenset[str]) -> None:
        self._app = app
        self._expected = f"Bearer {token}".encode()
        self._open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self._app(scope, receive, send)

    def _refusal(self, scope: Scope, headers: Mapping[bytes, bytes]) -> Response | None:
        client = scope.get("client")
        if client and not _is_loopback(client[0]):
            return _error(403, "NOT_LOOPBACK", "the status API answers only this machine")
        host = headers.get(b"host", b"").decode("latin-1").rsplit(":", 1)[0].lower()
        if host not in _LOOPBACK_NAMES:
            return _error(403, "BAD_HOST", "the status API answers only 127.0.0.1 or localhost")
        if scope["path"] in self._open_paths:
            return None
        given = headers.get(b"authorization", b"")
        if not secrets.compare_digest(given, self._expected):
            response = _error(
                401,
                "UNAUTHORIZED",
                "missing or wrong bearer token; it is in the agent's status.json",
            )
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        return None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def create_app(
    *,
    state: AgentState,
    controller: Controller,
    token: str,
    metrics_without_token: bool = False,
    backlog: Callable[[], Mapping[str, int]] | None = None,
    usage: Callable[[], Mapping[str, Any]] | None = None,
    coalesce_s: float = COALESCE_S,
    keepalive_s: float = KEEPALIVE_S,
    closing: asyncio.Event | None = None,
) -> ASGIApp:
    """The status API as an ASGI app (tests drive it through httpx's ASGITransport).

    ``closing`` ends every event stream when set (the server sets it before stopping);
    ``usage`` answers ``/v1/resources`` (501 without it).
    """
    closing = closing or asyncio.Event()
    collector = AgentCollector(state)
    registry = registry_for(collector)

    async def status(request: Request) -> Response:
        return JSONResponse(state.snapshot())

    async def events(request: Request) -> Response:
        stream = EventStream(state, closing, coalesce_s=coalesce_s, keepalive_s=keepalive_s)
        return StreamingResponse(
            stream.stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def job(request: Request) -> Response:
        view = state.job(request.path_params["job_id"])
        if view is None:
            return _not_found(request.path_params["job_id"])
        return JSONResponse(view.to_dict(time.time()))

    async def job_metrics(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        points = state.history(job_id)
        if points is None:
            return _not_found(job_id)
        return JSONResponse({"job_id": job_id, "points": points})

    async def job_log(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        try:
            tail = int(request.query_params.get("tail", "100"))
        except ValueError:
            return _error(400, "BAD_REQUEST", "tail must be a whole number of lines")
        found = state.log_tail(job_id, max(0, tail))
        if found is None:
            return _not_found(job_id)
        first_line, lines = found
        return JSONResponse({"job_id": job_id, "first_line": first_line, "lines": lines})

    async def resources(request: Request) -> Response:
        if usage is None:
            return _error(501, "NOT_SUPPORTED", "this agent does not sample its machine's load")
        return JSONResponse(dict(await run_in_threadpool(usage)))

    async def cancel(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        try:
            cancelling = controller.cancel_job(job_id, "cancelled on this machine")
        except NotImplementedError as exc:
            return _error(501, "NOT_SUPPORTED", str(exc))
        if not cancelling:
            return _error(404, "JOB_NOT_RUNNING", f"job {job_id} is not running on this agent")
        log.info("job %s: cancel requested through the status API", job_id)
        return JSONResponse({"job_id": job_id, "cancelling": True}, status_code=202)

    async def drain(request: Request) -> Response:
        controller.drain()
        return JSONResponse({"draining": True})

    async def resume(request: Request) -> Response:
        try:
            controller.resume()
        except NotImplementedError as exc:
            return _error(501, "NOT_SUPPORTED", str(exc))
        return JSONResponse({"draining": False})

    async def metrics(request: Request) -> Response:
        if backlog is not None:
            try:
                collector.backlog = await run_in_threadpool(backlog)
            except Exception as exc:  # a scrape still answers without the backlog
                log.warning("cannot count the outbox backlog: %s", exc)
                collector.backlog = None
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(registry), media_type=None, headers={"Content-Type": content_type})

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(404, "NOT_FOUND", f"no such endpoint: {request.method} {request.url.path}")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return _error(405, "METHOD_NOT_ALLOWED", f"{request.method} is not allowed here")

    routes = [
        Route("/v1/status", status, methods=["GET"]),
        Route("/v1/events", events, methods=["GET"]),
        Route("/v1/jobs/{job_id}", job, methods=["GET"]),
        Route("/v1/jobs/{job_id}/metrics", job_metrics, methods=["GET"]),
        Route("/v1/jobs/{job_id}/log", job_log, methods=["GET"]),
        Route("/v1/jobs/{job_id}/cancel", cancel, methods=["POST"]),
        Route("/v1/resources", resources, methods=["GET"]),
        Route("/v1/drain", drain, methods=["POST"]),
        Route("/v1/resume", resume, methods=["POST"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})
    open_paths = frozenset({"/metrics"}) if metrics_without_token else frozenset()
    return _Guard(app, token=token, open_paths=open_paths)


def _not_found(job_id: str) -> JSONResponse:
    return _error(404, "JOB_NOT_FOUND", f"job {job_id} is not running or recent on this agent")


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
        self.file: StatusFile | None = None

    async def start(self) -> StatusFile:
        """Listen on 127.0.0.1 and a free port, then write ``status.json``."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
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
