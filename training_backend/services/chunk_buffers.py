"""Reusable buffers that artifact chunks are received into, one per chunk in flight.

    buffers = ChunkBuffers(max_chunk_bytes)
    with buffers.borrowed() as buffer:         # an mmap of max_chunk_bytes
        view = memoryview(buffer)
        view[0 : len(piece)] = piece           # the body's pieces, in place
        ...                                    # hash and write from view[:size]

The request body arrives in pieces of a few dozen KiB. Joining them into a new bytes
object per chunk costs a copy of the chunk into memory the process has just asked the
operating system for: the allocator hands an 8 MiB block back when it is freed, so each
chunk pays page faults and zeroing on top of the copy (a fifth of the backend's CPU per
uploaded GB, measured in docs/benchmarks.md). A buffer that stays mapped between chunks
takes the pieces with one copy and no faults. Each buffer is an anonymous ``mmap``, so
it starts at a page boundary: the local store writes a chunk from there with
``O_DIRECT`` (see ``artifact_store.local``), which needs an aligned address. At most
``keep`` idle buffers are held; more chunks at once borrow new ones, which go when they
come back to a full pool.

A buffer goes back only when the chunk's store-and-hash work is over: that work runs in
``run_in_threadpool``, which does not let the request give up before the thread is done,
so no later chunk can land in a buffer a write or a hash is still reading.
"""

from __future__ import annotations

import mmap
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ChunkBuffers:
    """A pool of ``size``-byte buffers; safe across threads and tasks."""

    def __init__(self, size: int, *, keep: int = 2) -> None:
        self.size = size
        self._keep = keep
        self._idle: list[mmap.mmap] = []
        self._guard = threading.Lock()

    @contextmanager
    def borrowed(self) -> Iterator[mmap.mmap]:
        """A buffer of ``size`` bytes (its content is whatever the last chunk left)."""
        with self._guard:
            buffer = self._idle.pop() if self._idle else None
        if buffer is None:
            buffer = mmap.mmap(-1, self.size)
        try:
            yield buffer
        finally:
            with self._guard:
                if len(self._idle) < self._keep:
                    self._idle.append(buffer)

    @property
    def idle(self) -> int:
        """How many buffers wait for the next chunk."""
        with self._guard:
            return len(self._idle)
