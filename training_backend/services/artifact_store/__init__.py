"""Where artifact bytes live: one small interface, a local directory or an S3 bucket.

    store = open_store(settings)           # LocalStore, or S3Store for s3://bucket/prefix
    state = store.write(key, {}, offset=0, data=chunk, last=False)   # in order, from 0
    state = store.write(key, state, offset=len(chunk), data=rest, last=True)
    store.finish(key, state)               # the object is whole and readable
    for block in store.read(key, start=0, end=size): ...
    store.discard(key)                     # everything under key, whole or partial

Writes come strictly in order (the caller checks offsets against the database), so a
store never sees a gap. ``state`` is a small JSON object the caller keeps with the
artifact's row, so any backend process sharing the database and the store can go on
with an upload another one began. Every method may raise ``StoreFull`` (507 to the
agent, which retries later) or ``StoreUnavailable`` (503, retried too).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from training_backend.services.artifact_store.errors import StoreFull, StoreUnavailable
from training_backend.settings import BackendSettings

UploadState = dict[str, Any]
"""What a store keeps about an unfinished upload between two chunks (JSON-able)."""


class ArtifactStore(Protocol):
    """Artifact bytes by storage key; every call blocks (run it in a worker thread)."""

    @property
    def location(self) -> str:
        """Where the bytes go, for logs and messages: a folder or ``s3://bucket/prefix``."""
        ...

    def write(
        self, key: str, state: UploadState, *, offset: int, data: bytes | memoryview, last: bool
    ) -> UploadState:
        """Store ``data`` at ``offset`` (the bytes held so far); ``last`` if it ends the object.

        ``data`` may be a view of a buffer the next chunk reuses: a store that keeps any
        of it past the call keeps a copy."""
        ...

    def finish(self, key: str, state: UploadState) -> None:
        """Make the object whole and readable after its last write (idempotent)."""
        ...

    def read(self, key: str, *, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``start`` to ``end`` (exclusive) of a finished object, a block at a time."""
        ...

    def discard(self, key: str) -> None:
        """Remove everything stored under ``key``, finished or not (idempotent)."""
        ...

    def keys(self) -> Iterator[str]:
        """Every key that holds anything, finished or not (for garbage collection)."""
        ...

    def free_bytes(self) -> int | None:
        """Room left for new bytes, or ``None`` where the store cannot tell (S3)."""
        ...


def open_store(settings: BackendSettings) -> ArtifactStore:
    """The store the settings name: ``artifacts_url`` (S3) if set, else the directory."""
    if settings.artifacts_url is not None:
        from training_backend.services.artifact_store.s3 import S3Store

        return S3Store.from_url(settings.artifacts_url)
    from training_backend.services.artifact_store.local import LocalStore, artifacts_dir

    return LocalStore(artifacts_dir(settings))


__all__ = ["ArtifactStore", "StoreFull", "StoreUnavailable", "UploadState", "open_store"]
