"""Stopping with held polls: the first SIGTERM or SIGINT answers every held long poll at
once, then does what it did before (uvicorn's graceful shutdown).

A server waits for its requests before it exits, and a held poll would hold the exit up
to its whole hold (30 s). ``closing_held_polls`` wraps the process's handlers for the
lifetime of the app, so it works the same in a single ``serve`` process and in each
worker of ``serve --workers N`` (whose uvicorn server this package does not build).
Outside the main thread (an app run inside a test's thread) it does nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _handing_on(close: Callable[[], None], prior: Any) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        close()
        if callable(prior):
            prior(signum, frame)
        elif prior == signal.SIG_DFL:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    return handler


@contextlib.contextmanager
def closing_held_polls(close: Callable[[], None]) -> Iterator[None]:
    """For the block: ``close()`` (``Wakeups.close``) first, on SIGINT and SIGTERM."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    priors = {signum: signal.getsignal(signum) for signum in SIGNALS}
    for signum, prior in priors.items():
        signal.signal(signum, _handing_on(close, prior))
    try:
        yield
    finally:
        for signum, prior in priors.items():
            if prior is not None:
                signal.signal(signum, prior)
