"""Long polls: hold a poll until a job of the caller's user turns up or the wait ends.

A waiter wakes on its event (``services.wakeups``: a job submitted or requeued in this
process, or a PostgreSQL notification from another) and in any case about once a
second, when it looks at the database again: a lost wake-up costs a second, never a
whole hold. It holds no database connection while it waits; each look opens and closes
its own session in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from training_backend.errors import ApiError

#: The longest a poll is held (``wait_seconds`` above it is clamped).
MAX_WAIT_SECONDS = 30.0
#: How often a waiter looks at the database even without a wake-up.
RECHECK_SECONDS = 1.0

T = TypeVar("T")


def clamp_wait(wait_seconds: float | None) -> float:
    """The hold for a requested ``wait_seconds``: 0 (a plain poll) up to ``MAX_WAIT_SECONDS``."""
    if wait_seconds is None:
        return 0.0
    if not math.isfinite(wait_seconds):
        message = "Invalid request: wait_seconds must be a number of seconds up to 30"
        raise ApiError(400, "INVALID_REQUEST", message)
    return min(max(wait_seconds, 0.0), MAX_WAIT_SECONDS)


async def wait_for_job(
    event: asyncio.Event,
    *,
    wait_s: float,
    peek: Callable[[], Awaitable[T | None]],
    recheck_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    closing: Callable[[], bool] = lambda: False,
) -> T | None:
    """What ``peek`` finds after a wake-up or a recheck, or ``None`` once ``wait_s`` passed
    (or at once when ``closing()`` turns true: the server is shutting down).

    ``recheck_s`` defaults to ``RECHECK_SECONDS`` (read at call time).
    """
    recheck_s = RECHECK_SECONDS if recheck_s is None else recheck_s
    deadline = clock() + wait_s
    while (remaining := deadline - clock()) > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=min(recheck_s, remaining))
        event.clear()
        if closing():
            return None
        found = await peek()
        if found is not None:
            return found
    return None
