"""Giving freed memory back to the system between jobs.

Each job makes and frees a great many small objects (reports, HTTP bodies, log lines).
glibc keeps the freed pages of its heap for later, so over hours the agent's resident
size crept up (about 2.5 MiB an hour in the two-hour soak, docs/benchmarks.md) while the
memory it used stayed flat. ``malloc_trim(0)`` after each job hands those pages back.
Where there is no such call (macOS, Windows, a C library without it) nothing is done.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the C library this process already uses
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


def give_back() -> bool:
    """Return the heap's free pages to the system; True when some were returned."""
    trim = _malloc_trim()
    return trim is not None and bool(trim(0))
