"""The local status API: what the agent is doing, for ``status``, the dashboard and Prometheus.

Loopback HTTP on 127.0.0.1 and a random free port, served by uvicorn inside the agent's
own event loop (``status.server``). Every request needs ``Authorization: Bearer <token>``;
the port and the token are in ``status.json`` in the state dir (mode 0600, see
``status.file``), so only the agent's own user can talk to it.

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
import ipaddress
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from training_agent.status.events import COALESCE_S, KEEPALIVE_S, EventStream
from training_agent.status.metrics import AgentCollector, registry_for
from training_agent.status.state import AgentState, Controller

log = logging.getLogger(__name__)

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
    ends = _Endpoints(
        state=state,
        controller=controller,
        backlog=backlog,
        usage=usage,
        coalesce_s=coalesce_s,
        keepalive_s=keepalive_s,
        closing=closing or asyncio.Event(),
    )
    routes = [
        Route("/v1/status", ends.status, methods=["GET"]),
        Route("/v1/events", ends.events, methods=["GET"]),
        Route("/v1/jobs/{job_id}", ends.job, methods=["GET"]),
        Route("/v1/jobs/{job_id}/metrics", ends.job_metrics, methods=["GET"]),
        Route("/v1/jobs/{job_id}/log", ends.job_log, methods=["GET"]),
        Route("/v1/jobs/{job_id}/cancel", ends.cancel, methods=["POST"]),
        Route("/v1/resources", ends.resources, methods=["GET"]),
        Route("/v1/drain", ends.drain, methods=["POST"]),
        Route("/v1/resume", ends.resume, methods=["POST"]),
        Route("/metrics", ends.metrics, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _no_such_endpoint, 405: _not_allowed})
    open_paths = frozenset({"/metrics"}) if metrics_without_token else frozenset()
    return _Guard(app, token=token, open_paths=open_paths)


class _Endpoints:
    """The handlers of ``create_app``'s routes, over one agent's state and controller."""

    def __init__(
        self,
        *,
        state: AgentState,
        controller: Controller,
        backlog: Callable[[], Mapping[str, int]] | None,
        usage: Callable[[], Mapping[str, Any]] | None,
        coalesce_s: float,
        keepalive_s: float,
        closing: asyncio.Event,
    ) -> None:
        self._state = state
        self._controller = controller
        self._backlog = backlog
        self._usage = usage
        self._coalesce_s = coalesce_s
        self._keepalive_s = keepalive_s
        self._closing = closing
        self._collector = AgentCollector(state)
        self._registry = registry_for(self._collector)

    async def status(self, request: Request) -> Response:
        return JSONResponse(self._state.snapshot())

    async def events(self, request: Request) -> Response:
        stream = EventStream(
            self._state,
            self._closing,
            coalesce_s=self._coalesce_s,
            keepalive_s=self._keepalive_s,
        )
        return StreamingResponse(
            stream.stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def job(self, request: Request) -> Response:
        view = self._state.job(request.path_params["job_id"])
        if view is None:
            return _not_found(request.path_params["job_id"])
        return JSONResponse(view.to_dict(time.time()))

    async def job_metrics(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        points = self._state.history(job_id)
        if points is None:
            return _not_found(job_id)
        return JSONResponse({"job_id": job_id, "points": points})

    async def job_log(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        try:
            tail = int(request.query_params.get("tail", "100"))
        except ValueError:
            return _error(400, "BAD_REQUEST", "tail must be a whole number of lines")
        found = self._state.log_tail(job_id, max(0, tail))
        if found is None:
            return _not_found(job_id)
        first_line, lines = found
        return JSONResponse({"job_id": job_id, "first_line": first_line, "lines": lines})

    async def resources(self, request: Request) -> Response:
        if self._usage is None:
            return _error(501, "NOT_SUPPORTED", "this agent does not sample its machine's load")
        return JSONResponse(dict(await run_in_threadpool(self._usage)))

    async def cancel(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        try:
            cancelling = self._controller.cancel_job(job_id, "cancelled on this machine")
        except NotImplementedError as exc:
            return _error(501, "NOT_SUPPORTED", str(exc))
        if not cancelling:
            return _error(404, "JOB_NOT_RUNNING", f"job {job_id} is not running on this agent")
        log.info("job %s: cancel requested through the status API", job_id)
        return JSONResponse({"job_id": job_id, "cancelling": True}, status_code=202)

    async def drain(self, request: Request) -> Response:
        self._controller.drain()
        return JSONResponse({"draining": True})

    async def resume(self, request: Request) -> Response:
        try:
            self._controller.resume()
        except NotImplementedError as exc:
            return _error(501, "NOT_SUPPORTED", str(exc))
        return JSONResponse({"draining": False})

    async def metrics(self, request: Request) -> Response:
        if self._backlog is not None:
            try:
                self._collector.backlog = await run_in_threadpool(self._backlog)
            except Exception as exc:  # a scrape still answers without the backlog
                log.warning("cannot count the outbox backlog: %s", exc)
                self._collector.backlog = None
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(
            encoder(self._registry), media_type=None, headers={"Content-Type": content_type}
        )


async def _no_such_endpoint(request: Request, exc: Exception) -> Response:
    return _error(404, "NOT_FOUND", f"no such endpoint: {request.method} {request.url.path}")


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return _error(405, "METHOD_NOT_ALLOWED", f"{request.method} is not allowed here")


def _not_found(job_id: str) -> JSONResponse:
    return _error(404, "JOB_NOT_FOUND", f"job {job_id} is not running or recent on this agent")
