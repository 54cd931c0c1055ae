"""HTTP ``Range: bytes=…`` requests (RFC 9110 section 14), the single-range kind.

    requested_range("bytes=100-", size=1000)    -> (100, 1000)   # end exclusive
    requested_range("bytes=-10", size=1000)     -> (990, 1000)
    requested_range("bytes=5000-", size=1000)   -> raises Unsatisfiable (416)
    requested_range("bytes=0-1,5-9", size=1000) -> None          # whole body (allowed)

A header that does not parse is ignored, as the RFC allows: the whole body is sent.
"""

from __future__ import annotations

import re

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class Unsatisfiable(Exception):
    """The range lies wholly past the end: answer 416 with ``Content-Range: bytes */size``."""


def requested_range(header: str | None, *, size: int) -> tuple[int, int] | None:
    """``(start, end)`` with ``end`` exclusive, or ``None`` for the whole body."""
    match = _RANGE.match(header or "")
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # a suffix: the last N bytes
        length = int(last)
        if length == 0:
            raise Unsatisfiable
        return max(size - length, 0), size
    start = int(first)
    end = size if not last else min(int(last) + 1, size)
    if last and int(last) < start:
        return None  # invalid: ignored
    if start >= size:
        raise Unsatisfiable
    return start, end
