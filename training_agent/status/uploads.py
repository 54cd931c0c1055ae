"""Artifact uploads as a person watching the agent sees them: bytes, rate, time left.

The artifact uploader (``reporting.artifacts``) reports into one ``UploadBoard`` (plain
calls from the event loop, no I/O); ``AgentState.snapshot()`` serves its ``snapshot()``
as ``uploads``, which ``training-agent status`` and the dashboard draw:

    {"job_id": "7c1e…", "name": "final_adapter.tar", "kind": "adapter",
     "state": "uploading", "size_bytes": 67108864, "sent_bytes": 25165824,
     "rate_bps": 91000000.0, "eta_s": 0.46, "error": null, ...}

The rate is the average over the last ``RATE_WINDOW_S`` seconds, so a pause (an outage)
shows as a falling rate, then none, rather than as a stale number.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

RATE_WINDOW_S = 5.0
KEPT_FINISHED = 10  # settled uploads still shown


class UploadViewState(enum.StrEnum):
    """Where one upload stands, as shown."""

    HASHING = "hashing"  # reading the output once for its SHA-256
    UPLOADING = "uploading"  # chunks are going up
    WAITING = "waiting"  # planned, or between tries (the backend did not answer)
    COMPLETE = "complete"  # the backend verified it
    FAILED = "failed"  # given up; the output stays on this machine


@dataclass
class UploadView:
    """One upload (``seq`` is its row in the outbox)."""

    seq: int
    job_id: str
    name: str
    kind: str
    path: str
    state: UploadViewState = UploadViewState.WAITING
    size_bytes: int | None = None
    sent_bytes: int = 0  # bytes the backend holds
    hashed_bytes: int = 0
    error: str | None = None
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    _samples: deque[tuple[float, int]] = field(default_factory=deque, repr=False)

    def to_dict(self, now: float) -> dict[str, Any]:
        data = asdict(self)
        del data["_samples"]
        rate = self.rate_bps(now) if self.state is UploadViewState.UPLOADING else None
        data["rate_bps"] = rate
        left = (self.size_bytes or 0) - self.sent_bytes
        data["eta_s"] = left / rate if rate and left > 0 else None
        return data

    def rate_bps(self, now: float) -> float | None:
        """Bytes per second over the last ``RATE_WINDOW_S`` (None: too few samples)."""
        samples = [(at, sent) for at, sent in self._samples if now - at <= RATE_WINDOW_S]
        if len(samples) < 2 or samples[-1][0] <= samples[0][0]:
            return None
        (first_at, first), (last_at, last) = samples[0], samples[-1]
        span = max(now, last_at) - first_at
        return max(0.0, (last - first) / span) if span > 0 else None


class UploadBoard:
    """Every upload in progress and the last few settled ones."""

    def __init__(
        self,
        *,
        on_change: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._views: OrderedDict[int, UploadView] = OrderedDict()
        self._on_change = on_change
        self._clock = clock

    def planned(self, seq: int, *, job_id: str, name: str, kind: str, path: str) -> None:
        """An upload the uploader is about to work on (again)."""
        if seq not in self._views:
            self._views[seq] = UploadView(seq, job_id, name, kind, path, started_at=self._clock())
            self._on_change()

    def hashing(self, seq: int, *, done: int, size: int) -> None:
        if view := self._views.get(seq):
            view.state, view.hashed_bytes, view.size_bytes = UploadViewState.HASHING, done, size
            self._on_change()

    def sent(self, seq: int, *, offset: int, size: int) -> None:
        """The backend holds ``offset`` of ``size`` bytes."""
        if view := self._views.get(seq):
            now = self._clock()
            if view.state is not UploadViewState.UPLOADING or offset < view.sent_bytes:
                view._samples.clear()  # a new session: the rate starts over
            view.state, view.sent_bytes, view.size_bytes = UploadViewState.UPLOADING, offset, size
            view._samples.append((now, offset))
            while view._samples and now - view._samples[0][0] > RATE_WINDOW_S:
                view._samples.popleft()
            self._on_change()

    def waiting(self, seq: int) -> None:
        if view := self._views.get(seq):
            view.state = UploadViewState.WAITING
            view._samples.clear()
            self._on_change()

    def settled(self, seq: int, *, error: str | None = None) -> None:
        """Complete (``error`` None) or failed for good."""
        if view := self._views.get(seq):
            view.state = UploadViewState.COMPLETE if error is None else UploadViewState.FAILED
            view.error, view.finished_at = error, self._clock()
            if error is None and view.size_bytes is not None:
                view.sent_bytes = view.size_bytes
            self._forget_old()
            self._on_change()

    def snapshot(self) -> list[dict[str, Any]]:
        now = self._clock()
        return [view.to_dict(now) for view in self._views.values()]

    def _forget_old(self) -> None:
        settled = [seq for seq, view in self._views.items() if view.finished_at is not None]
        for seq in settled[: max(0, len(settled) - KEPT_FINISHED)]:
            del self._views[seq]
