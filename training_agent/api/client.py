"""One async method per backend endpoint (docs/protocol.md); no retries here.

Every failure leaves this module as an ``ApiError`` (see ``training_agent.errors``);
``training_agent.retry`` decides what to do about it.

    async with BackendClient(base_url=url, api_key=key, identity=identity) as backend:
        answer = await backend.poll(wait_s=30 if "long_poll" in features else None)
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from training_agent.api.download import DownloadedFile, save_body
from training_agent.api.failures import transport_error
from training_agent.api.models import (
    ArtifactChunkStored,
    ArtifactDeclared,
    ClaimResponse,
    HeartbeatResponse,
    JobState,
    LogsResponse,
    PollResponse,
    ReportResponse,
)
from training_agent.api.responses import parse_lenient, parse_model, status_error
from training_agent.api.sockets import backend_transport
from training_agent.errors import ConfigError, ProtocolError
from training_agent.identity import AgentIdentity
from training_agent.jobs import JobStatus
from training_agent.tls import ssl_context

# A long poll's read timeout is the hold plus this margin (docs/protocol.md, long_poll; GitHub's
# runner uses the same 10 s over its 50 s hold).
LONG_POLL_MARGIN_S = 10.0

# What a Bearer value may contain; anything else (a pasted newline, a space) would be
# refused by the HTTP library with an error message that quotes the header value.
_TOKEN_RE = re.compile(r"[\x21-\x7e]+")


class BackendClient:
    """The backend's training-agent API over one shared ``httpx.AsyncClient``."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | SecretStr,
        identity: AgentIdentity,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        on_response: Callable[[httpx.Response], Awaitable[None]] | None = None,
    ) -> None:
        url = httpx.URL(base_url.strip())
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError(f"the backend URL {base_url!r} must start with http:// or https://")
        self._origin = _origin(url)
        self._api_key = _checked_api_key(api_key)
        self._identity = identity
        self._timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        # The OS trust store (+ SSL_CERT_FILE): the context `doctor` checks with too.
        verify = ssl_context()
        if transport is None:  # a send buffer that takes an artifact chunk whole (sockets.py)
            transport = backend_transport(verify)
        self._http = httpx.AsyncClient(
            base_url=url.copy_with(path=url.path.rstrip("/")),
            transport=transport,
            verify=verify,
            timeout=self._timeout,
            follow_redirects=False,
            headers={"User-Agent": f"training-agent/{identity.version}"},
            # `doctor` reads the answer's Date header through this to measure clock skew.
            event_hooks={"response": [on_response] if on_response else []},
        )

    def __repr__(self) -> str:
        return f"BackendClient(base_url={self._origin!r}, agent_id={self._identity.agent_id!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()

    @property
    def api_key(self) -> SecretStr:
        return self._api_key

    def set_api_key(self, api_key: str | SecretStr) -> None:
        """Use another API key from the next request on (after a 401 and a re-read)."""
        self._api_key = _checked_api_key(api_key)

    async def poll(
        self, *, wait_s: float | None = None, headers: Mapping[str, str] | None = None
    ) -> PollResponse:
        """Peek at the next pending job; ``wait_s`` asks the server to hold (``long_poll``).

        ``headers`` are sent too (``X-Agent-Info``, ``X-Agent-Current-Jobs``).
        """
        params: dict[str, str] = {}
        timeout = self._timeout
        if wait_s is not None:
            params["wait_seconds"] = f"{wait_s:g}"
            base = self._timeout
            timeout = httpx.Timeout(
                base.write, connect=base.connect, read=wait_s + LONG_POLL_MARGIN_S, pool=base.pool
            )
        path = "/api/training/agent/poll"
        response = await self._send(
            "GET", path, params=params, timeout=timeout, extra_headers=headers
        )
        return parse_model(response, PollResponse, what=f"GET {path}")

    async def claim(self, job_id: str) -> ClaimResponse:
        """Claim ``job_id`` for this agent; the answer carries the job token."""
        path = f"/api/training/agent/claim/{_seg(job_id)}"
        response = await self._send("POST", path)
        return parse_model(response, ClaimResponse, what=f"POST {path}")

    async def update_status(
        self,
        job_id: str,
        job_token: str,
        status: JobStatus,
        *,
        error: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> ReportResponse:
        """Set the job's status; ``details`` (``job_details`` feature) are extra body keys.

        ``details`` may hold ``total_steps``, ``total_epochs``, ``exit_code``, ``outputs``;
        keys whose value is None are left out.
        """
        body: dict[str, Any] = _without_none(details or {})
        if "status" in body or "error" in body:
            raise ValueError("details must not set 'status' or 'error'; use the parameters")
        body["status"] = status.value
        if error is not None:
            body["error"] = error
        path = f"/api/training/local/{_seg(job_id)}/status"
        return parse_lenient(await self._send("PATCH", path, body, job_token), ReportResponse)

    async def put_metric(
        self, job_id: str, job_token: str, point: Mapping[str, Any]
    ) -> ReportResponse:
        """Report one metric point (``step`` >= 1, numeric ``epoch``); None values are dropped."""
        path = f"/api/training/local/{_seg(job_id)}/metrics"
        response = await self._send("PUT", path, _without_none(point), job_token)
        return parse_lenient(response, ReportResponse)

    async def post_metrics(
        self, job_id: str, job_token: str, points: Sequence[Mapping[str, Any]]
    ) -> ReportResponse:
        """Report a batch of metric points in one request; None values are dropped."""
        body = {"job_id": job_id, "metrics": [_without_none(point) for point in points]}
        response = await self._send("POST", "/api/training/local/metrics", body, job_token)
        return parse_lenient(response, ReportResponse)

    async def heartbeat(self, job_id: str, job_token: str) -> HeartbeatResponse:
        """Say the job still runs (``heartbeat``); renews its lease and returns its ``control``."""
        path = f"/api/training/local/{_seg(job_id)}/heartbeat"
        response = await self._send("POST", path, {}, job_token)
        return parse_model(response, HeartbeatResponse, what=f"POST {path}")

    async def post_logs(
        self, job_id: str, job_token: str, lines: Sequence[str], *, offset: int | None = None
    ) -> LogsResponse:
        """Append log lines; ``offset`` (``log_offsets`` feature) is the first line's index."""
        body: dict[str, Any] = {"logs": list(lines)}
        if offset is not None:
            body["offset"] = offset
        path = f"/api/training/local/{_seg(job_id)}/logs"
        response = await self._send("POST", path, body, job_token)
        return parse_model(response, LogsResponse, what=f"POST {path}")

    async def get_job_state(self, job_id: str) -> JobState:
        """The job's state as the backend sees it (used to notice an external cancel)."""
        path = f"/api/training/local/{_seg(job_id)}/status"
        response = await self._send("GET", path)
        return parse_model(response, JobState, what=f"GET {path}")

    async def download_dataset(self, job_id: str, job_token: str, target: Path) -> DownloadedFile:
        """Stream the job's dataset (``dataset_download``) into the new file ``target``.

        The body goes to disk chunk by chunk, hashed on the way; nothing checks it
        against the expected checksum here (the caller knows what it expects).
        """
        path = f"/api/training/local/{_seg(job_id)}/dataset"
        async with self._stream("GET", path, job_token) as response:
            return await save_body(response, target, what=f"GET {path}")

    async def download_release(self, platform: str, arch: str, target: Path) -> DownloadedFile:
        """Stream this backend's agent archive for ``platform`` and ``arch`` (the build an
        ``agent_update`` offers) into the new file ``target``; the caller verifies it."""
        path = f"/api/workers/download/{_seg(platform)}?arch={_seg(arch)}"
        async with self._stream("GET", path) as response:
            return await save_body(response, target, what=f"GET {path}")

    async def declare_artifact(
        self, job_id: str, job_token: str, *, name: str, kind: str, size_bytes: int, sha256: str
    ) -> ArtifactDeclared:
        """Declare an upload (``artifacts``); the same name and SHA-256 again answers the
        existing upload and the server's offset in it."""
        body = {"name": name, "kind": kind, "size_bytes": size_bytes, "sha256": sha256}
        path = f"/api/training/local/{_seg(job_id)}/artifacts"
        response = await self._send("POST", path, body, job_token)
        return parse_model(response, ArtifactDeclared, what=f"POST {path}")

    async def put_artifact_chunk(
        self, job_id: str, job_token: str, artifact_id: str, *, offset: int, chunk: bytes
    ) -> ArtifactChunkStored:
        """Store ``chunk`` at ``offset`` of the artifact; a chunk the server already holds
        answers success, a gap 409 ``ARTIFACT_GAP`` with ``expected_offset``."""
        path = f"/api/training/local/{_seg(job_id)}/artifacts/{_seg(artifact_id)}"
        response = await self._send(
            "PUT", path, job_token=job_token, params={"offset": str(offset)}, content=chunk
        )
        return parse_lenient(response, ArtifactChunkStored)

    async def _send(
        self,
        method: str,
        path: str,
        body: Any = None,
        job_token: str | None = None,
        *,
        params: Mapping[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
        extra_headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """Send one request: the job token if given, else the API key; 2xx or raise.

        ``content`` is sent as a raw ``application/octet-stream`` body instead of JSON.
        """
        timeout = timeout or self._timeout
        headers = self._headers(path, job_token, extra_headers)
        if content is not None:
            headers["Content-Type"] = "application/octet-stream"
        try:
            response = await self._http.request(
                method,
                path,
                json=body,
                content=content,
                params=params,
                headers=headers,
                timeout=timeout,
            )
        except httpx.DecodingError as exc:
            raise ProtocolError(
                f"the backend's answer to {method} {path} could not be decoded"
            ) from exc
        except httpx.RequestError as exc:
            raise transport_error(exc, self._origin, timeout) from exc
        return self._checked(response, f"{method} {path}", job_token)

    @contextlib.asynccontextmanager
    async def _stream(
        self, method: str, path: str, job_token: str | None = None
    ) -> AsyncIterator[httpx.Response]:
        """Like ``_send``, but the 2xx body is left unread for the caller to stream."""
        headers = self._headers(path, job_token, None)
        try:
            async with self._http.stream(method, path, headers=headers) as response:
                if not response.is_success:
                    await response.aread()
                yield self._checked(response, f"{method} {path}", job_token)
        except httpx.RequestError as exc:
            raise transport_error(exc, self._origin, self._timeout) from exc

    def _headers(
        self, path: str, job_token: str | None, extra: Mapping[str, str] | None
    ) -> dict[str, str]:
        secret = self._api_key.get_secret_value() if job_token is None else job_token
        if job_token is not None and not _TOKEN_RE.fullmatch(job_token):
            raise ProtocolError(f"the job token for {path} cannot be sent in an HTTP header")
        return {
            **{name: _header_text(value) for name, value in (extra or {}).items()},
            "Authorization": f"Bearer {secret}",
            **self._agent_headers(),
        }

    def _checked(
        self, response: httpx.Response, what: str, job_token: str | None
    ) -> httpx.Response:
        if response.is_success:
            return response
        secret = self._api_key.get_secret_value()
        raise status_error(
            response,
            what=what,
            api_key_call=job_token is None,
            secrets=(secret,) if job_token is None else (job_token, secret),
        )

    def _agent_headers(self) -> dict[str, str]:
        identity = self._identity
        return {
            "X-Agent-ID": identity.agent_id,
            "X-Agent-Hostname": _header_text(identity.hostname),
            "X-Agent-Platform": identity.platform,
            "X-Agent-Version": _header_text(identity.version),
        }


def _checked_api_key(api_key: str | SecretStr) -> SecretStr:
    raw = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
    raw = raw.strip()  # a key pasted with its trailing newline is still the key
    if not raw:
        raise ConfigError("no API key is set; run 'training-agent login' or set API_KEY")
    if not _TOKEN_RE.fullmatch(raw):
        raise ConfigError(
            "the API key contains spaces or non-ASCII characters; copy it again from the page"
        )
    return SecretStr(raw)


def _origin(url: httpx.URL) -> str:
    """``scheme://host[:port]`` of ``url``: what messages name (never user:password@)."""
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{url.host}{port}"


def _seg(value: str) -> str:
    """``value`` quoted as one path segment (a job id with ``/`` must not change the route)."""
    return quote(value, safe="")


def _header_text(value: str) -> str:
    """``value`` made safe for a header: printable ASCII only (a host name may not be)."""
    return "".join(c if " " <= c <= "~" else "?" for c in value)


def _without_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}
