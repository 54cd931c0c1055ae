"""One reader's view of what changed in the ``AgentState`` (``AgentState.watch``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

WATCH_BACKLOG = 5000  # points and lines a slow reader may fall behind before some drop


@dataclass
class Changes:
    """What changed since a watcher last looked."""

    kinds: set[str] = field(default_factory=set)  # connection|agent|job|metric|log|upload
    points: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # new, per job
    lines: dict[str, list[str]] = field(default_factory=dict)  # new log lines, per job
    dropped: int = 0  # points and lines dropped because the reader fell behind


class Watcher:
    """One reader's view of the changes; see ``AgentState.watch``."""

    def __init__(self, backlog: int = WATCH_BACKLOG) -> None:
        self._backlog = backlog
        self._held = 0
        self._changes = Changes()
        self._event = asyncio.Event()

    def record(
        self, kind: str, job_id: str | None = None, *, point: Any = None, line: Any = None
    ) -> None:
        changes = self._changes
        changes.kinds.add(kind)
        if job_id is not None and point is not None:
            changes.points.setdefault(job_id, []).append(point)
            self._held += 1
        if job_id is not None and line is not None:
            changes.lines.setdefault(job_id, []).append(line)
            self._held += 1
        if self._held > self._backlog:
            self._drop_oldest()
        self._event.set()

    def _drop_oldest(self) -> None:
        kept: list[list[Any]] = [*self._changes.points.values(), *self._changes.lines.values()]
        for items in kept:
            cut = len(items) // 2
            del items[:cut]
            self._changes.dropped += cut
            self._held -= cut

    def pending(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        """Wait until something changed (without taking it)."""
        await self._event.wait()

    async def next(self) -> Changes:
        """Wait for at least one change; everything since the last call."""
        await self._event.wait()
        return self.take()

    def take(self) -> Changes:
        """Everything since the last call, without waiting (may be empty)."""
        changes, self._changes, self._held = self._changes, Changes(), 0
        self._event.clear()
        return changes
