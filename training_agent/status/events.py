"""The ``/v1/events`` stream: the status snapshot, then what changed, as server-sent events.

    retry: 2000

    id: 1
    event: status
    data: {...the snapshot...}

    id: 2
    event: metrics
    data: {"job_id": "...", "points": [{"step": 121, ...}, ...]}

    id: 3
    event: log
    data: {"job_id": "...", "first_line": 240, "lines": ["...", ...]}

    id: 4
    event: status
    data: {...}

The first ``status`` goes out at once. After that every change is gathered and sent
at most every ``coalesce_s`` (0.1 s): ``metrics`` and ``log`` events with every point
and line since the last send (so a chart or a log view misses nothing), a ``dropped``
event when a slow reader lost some, then the whole snapshot again. A ``log`` event's
``first_line`` numbers its first line in the job's log (from 0, like ``GET
/v1/jobs/{id}/log``), so a reader that fetched the tail first can skip what it has. A comment line
keeps a quiet stream alive every ``keepalive_s``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any

from training_agent.status.state import AgentState
from training_agent.status.watch import Changes, Watcher

COALESCE_S = 0.1  # at most ~10 change events a second per event stream
KEEPALIVE_S = 15.0  # an SSE comment this often keeps idle proxies and clients attached


class EventStream:
    """The ``/v1/events`` stream of one client, as the text of server-sent events.

    ``clock`` and ``sleep`` are injectable so a test can check the pacing without waiting.
    """

    def __init__(
        self,
        state: AgentState,
        closing: asyncio.Event,
        *,
        coalesce_s: float = COALESCE_S,
        keepalive_s: float = KEEPALIVE_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._state = state
        self._closing = closing
        self._coalesce_s = coalesce_s
        self._keepalive_s = keepalive_s
        self._clock = clock
        self._sleep = sleep
        self._seq = 0

    async def stream(self) -> AsyncIterator[str]:
        with self._state.watch() as watcher:
            yield "retry: 2000\n\n"
            yield self._event("status", self._state.snapshot())
            last_sent = self._clock()
            while not self._closing.is_set():
                if not await self._changed(watcher):
                    yield ": keep-alive\n\n"
                    continue
                # Coalesce: let changes gather until coalesce_s after the last send.
                await self._sleep(max(0.0, last_sent + self._coalesce_s - self._clock()))
                # Built at once: the log numbering must be read before the state moves on.
                for event in list(self._events(watcher.take())):
                    yield event
                last_sent = self._clock()

    async def _changed(self, watcher: Watcher) -> bool:
        """True on a change; False after a quiet ``keepalive_s`` or when closing."""
        change = asyncio.ensure_future(watcher.wait())
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait(
                {change, closing}, timeout=self._keepalive_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            change.cancel()
            closing.cancel()
        return change.done() and not change.cancelled()

    def _events(self, changes: Changes) -> Generator[str, None, None]:
        for job_id, points in changes.points.items():
            yield self._event("metrics", {"job_id": job_id, "points": points})
        for job_id, lines in changes.lines.items():
            tail = self._state.log_tail(job_id, 0)
            first_line = None if tail is None else tail[0] - len(lines)
            yield self._event("log", {"job_id": job_id, "first_line": first_line, "lines": lines})
        if changes.dropped:
            yield self._event("dropped", {"count": changes.dropped})
        yield self._event("status", self._state.snapshot())

    def _event(self, name: str, data: Any) -> str:
        self._seq += 1
        return f"id: {self._seq}\nevent: {name}\ndata: {json.dumps(data)}\n\n"
