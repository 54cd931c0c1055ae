"""Talking to a running agent's status API: for ``training-agent status`` and the dashboard.

    client = StatusClient.connect(paths.status_file)   # AgentNotRunningError if none
    async with client:
        snapshot = await client.status()
        async for event in client.events():            # StatusEvent(name, data)
            ...

Finding the agent: ``status.json`` in the state dir says where it listens and with
which token. No file, a file whose process is gone, or a refused connection all mean
"no agent is running" (``AgentNotRunningError``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from training_agent.errors import AgentNotRunningError, StatusApiError
from training_agent.status.file import StatusFile

TIMEOUT_S = 5.0


@dataclass(frozen=True)
class StatusEvent:
    """One server-sent event: ``status``, ``metrics``, ``log`` or ``dropped``, and its data."""

    name: str
    data: Any
    id: str | None = None


def find_agent(status_path: Path) -> StatusFile:
    """The running agent's status file; raises ``AgentNotRunningError`` when there is none."""
    found = StatusFile.read(status_path)
    if found is None:
        raise AgentNotRunningError(
            f"no agent is running here (no {status_path}); start one with 'training-agent start'"
        )
    if found.is_stale():
        raise AgentNotRunningError(
            f"no agent is running here (the agent with pid {found.pid} that wrote "
            f"{status_path} has exited); start one with 'training-agent start'"
        )
    return found


class StatusClient:
    """An async client of one agent's status API."""

    def __init__(
        self,
        file: StatusFile,
        *,
        timeout_s: float = TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.file = file
        self._http = httpx.AsyncClient(
            base_url=file.url,
            headers={"Authorization": f"Bearer {file.token}"},
            timeout=timeout_s,
            transport=transport,
            trust_env=False,  # never send the token through a proxy
        )

    @classmethod
    def connect(cls, status_path: Path, *, timeout_s: float = TIMEOUT_S) -> StatusClient:
        return cls(find_agent(status_path), timeout_s=timeout_s)

    async def __aenter__(self) -> StatusClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def status(self) -> dict[str, Any]:
        """``GET /v1/status``: the agent's snapshot."""
        return await self._json("GET", "/v1/status")

    async def job_metrics(self, job_id: str) -> list[dict[str, Any]]:
        points: list[dict[str, Any]] = (await self._json("GET", f"/v1/jobs/{job_id}/metrics"))[
            "points"
        ]
        return points

    async def job_log(self, job_id: str, *, tail: int = 100) -> tuple[int, list[str]]:
        """(number of the first line, the lines)."""
        body = await self._json("GET", f"/v1/jobs/{job_id}/log", params={"tail": tail})
        return int(body["first_line"]), list(body["lines"])

    async def resources(self) -> dict[str, Any]:
        """``GET /v1/resources``: the machine's load now (see ``status.usage``)."""
        return await self._json("GET", "/v1/resources")

    async def cancel(self, job_id: str) -> None:
        await self._json("POST", f"/v1/jobs/{job_id}/cancel")

    async def drain(self) -> None:
        await self._json("POST", "/v1/drain")

    async def resume(self) -> None:
        await self._json("POST", "/v1/resume")

    async def events(self) -> AsyncIterator[StatusEvent]:
        """``GET /v1/events`` as parsed events, until the agent closes the stream."""
        try:
            async with self._http.stream(
                "GET", "/v1/events", timeout=httpx.Timeout(TIMEOUT_S, read=None)
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise self._refused(response)
                async for event in _parse_sse(response.aiter_lines()):
                    yield event
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code >= 400:
            raise self._refused(response)
        body: dict[str, Any] = response.json()
        return body

    def _unreachable(self, exc: httpx.TransportError) -> Exception:
        if isinstance(exc, httpx.ConnectError):
            return AgentNotRunningError(
                f"no agent is running here (nothing listens on {self.file.url}, where the "
                "status file says); start one with 'training-agent start'"
            )
        return StatusApiError(f"the agent's status API at {self.file.url} did not answer: {exc}")

    @staticmethod
    def _refused(response: httpx.Response) -> StatusApiError:
        try:
            sentence = str(response.json()["error"])
        except (ValueError, KeyError, TypeError):
            sentence = f"HTTP {response.status_code}"
        return StatusApiError(f"the agent refused the request: {sentence}")


async def _parse_sse(lines: AsyncIterator[str]) -> AsyncIterator[StatusEvent]:
    """Server-sent events from lines (the subset the status API sends: id, event, data)."""
    name, event_id = "message", None
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield StatusEvent(name, json.loads("\n".join(data)), event_id)
            name, data, event_id = "message", [], None
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                event_id = value
