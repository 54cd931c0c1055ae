"""The SHA-256 of each artifact upload this process receives in order, and a lock per upload.

    hashes = UploadHashes()
    with hashes.locked(artifact_id):            # one chunk of an upload at a time here
        hashes.add(artifact_id, offset=0, data=chunk)
    hashes.digest(artifact_id, size=n)           # the hex digest once n bytes went in

An upload whose chunks all reached this process gets its digest without reading the
stored bytes again. After a restart, or when another backend process took some chunks,
the entry is missing or behind and ``digest`` answers ``None``: the caller then hashes
the stored object (slower, as correct). Each entry is a few hundred bytes; the oldest go
beyond ``max_entries``.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Running:
    offset: int
    sha256: Any = field(default_factory=hashlib.sha256)  # hashlib's type is private


class UploadHashes:
    """Running hashes by artifact id, and per-artifact locks; safe across threads."""

    def __init__(self, *, max_entries: int = 1024) -> None:
        self._max_entries = max_entries
        self._running: OrderedDict[str, _Running] = OrderedDict()
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def locked(self, artifact_id: str) -> Iterator[None]:
        """Hold this process's lock of ``artifact_id`` (other uploads go on meanwhile)."""
        with self._guard:
            lock, users = self._locks.get(artifact_id, (threading.Lock(), 0))
            self._locks[artifact_id] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[artifact_id]
                if users == 1:
                    del self._locks[artifact_id]
                else:
                    self._locks[artifact_id] = (lock, users - 1)

    def add(self, artifact_id: str, *, offset: int, data: bytes | memoryview) -> None:
        """Hash ``data``, stored at ``offset``; a chunk that does not follow drops the entry."""
        with self._guard:
            running = self._running.pop(artifact_id, None)
            if offset == 0:
                running = _Running(offset=0)
            if running is None or running.offset != offset:
                return
            self._running[artifact_id] = running
            while len(self._running) > self._max_entries:
                self._running.popitem(last=False)
        running.sha256.update(data)  # outside the guard: hashing 8 MiB takes a while
        running.offset += len(data)

    def digest(self, artifact_id: str, *, size: int) -> str | None:
        """The hex SHA-256 of the first ``size`` bytes, if all of them went through here."""
        with self._guard:
            running = self._running.pop(artifact_id, None)
        if running is None or running.offset != size:
            return None
        return str(running.sha256.hexdigest())

    def forget(self, artifact_id: str) -> None:
        """Drop what is known of ``artifact_id`` (its upload was discarded)."""
        with self._guard:
            self._running.pop(artifact_id, None)
