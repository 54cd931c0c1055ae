"""Where the dashboard gets the agent from: the status API, behind a small protocol.

``StatusClient`` satisfies ``StatusSource``; tests hand the app a fake one. A
``Connector`` finds the agent afresh at each attach (a restarted agent has a new port and
token) and raises ``AgentNotRunningError`` when there is none.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

from training_agent.status.client import StatusClient, StatusEvent


class StatusSource(Protocol):
    """What the dashboard asks of the agent (``StatusClient`` is one)."""

    def events(self) -> AsyncIterator[StatusEvent]: ...

    async def job_metrics(self, job_id: str) -> list[dict[str, Any]]: ...

    async def job_log(self, job_id: str, *, tail: int = 100) -> tuple[int, list[str]]: ...

    async def resources(self) -> dict[str, Any]: ...

    async def cancel(self, job_id: str) -> None: ...

    async def drain(self) -> None: ...

    async def resume(self) -> None: ...

    async def aclose(self) -> None: ...


Connector = Callable[[], StatusSource]


def status_api_connector(status_path: Path) -> Connector:
    """Connect to the agent whose ``status.json`` is ``status_path``."""

    def connect() -> StatusSource:
        return StatusClient.connect(status_path)

    return connect
