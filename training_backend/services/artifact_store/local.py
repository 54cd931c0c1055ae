"""Artifacts in a local directory: ``<key>.partial`` while it arrives, ``<key>`` once whole.

Each chunk is written at its offset with ``pwrite`` straight from the request's bytes,
so the backend holds one chunk in memory, never a whole file. The file is flushed to
disk (``fsync``) once, when it is finished: an operating-system crash mid-upload can
lose acknowledged chunks, and the SHA-256 check at the end then discards the upload and
the agent sends it again. That trade keeps every chunk's write cheap.

Several backend processes may share the directory (a network file system): writes come
in order per artifact, and the final ``rename`` is atomic.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from training_backend.services.artifact_store import UploadState
from training_backend.services.artifact_store.errors import StoreFull, StoreUnavailable
from training_backend.services.datasets import backend_data_dir
from training_backend.settings import BackendSettings

READ_BLOCK_BYTES = 1024 * 1024
_PARTIAL = ".partial"
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def artifacts_dir(settings: BackendSettings) -> Path:
    """``TRAINING_BACKEND_ARTIFACTS_DIR``, else ``artifacts`` beside the SQLite file."""
    if settings.artifacts_dir is not None:
        return settings.artifacts_dir.expanduser()
    return backend_data_dir(settings) / "artifacts"


def _store_error(exc: OSError, directory: Path) -> StoreFull | StoreUnavailable:
    if exc.errno in _FULL_ERRNOS:
        message = (
            f"The backend's artifact storage ({directory}) is full; the upload goes on "
            "once the operator frees space"
        )
        return StoreFull(message)
    reason = exc.strerror or str(exc)
    return StoreUnavailable(f"The backend cannot write artifacts to {directory}: {reason}")


class LocalStore:
    """An ``ArtifactStore`` in ``directory`` (created on first use)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def location(self) -> str:
        """The directory, as text."""
        return str(self.directory)

    def _path(self, key: str) -> Path:
        if not key or "/" in key or "\\" in key or key.startswith("."):
            raise ValueError(f"not a storage key: {key!r}")  # keys come from the backend only
        return self.directory / key

    def write(
        self, key: str, state: UploadState, *, offset: int, data: bytes | memoryview, last: bool
    ) -> UploadState:
        """``pwrite`` ``data`` at ``offset`` into ``<key>.partial``."""
        partial = self._path(key + _PARTIAL)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                view = memoryview(data)
                while view:
                    written = os.pwrite(descriptor, view, offset)
                    view, offset = view[written:], offset + written
            finally:
                os.close(descriptor)
        except OSError as exc:
            raise _store_error(exc, self.directory) from exc
        return state

    def finish(self, key: str, state: UploadState) -> None:
        """Flush ``<key>.partial`` to disk and rename it ``<key>``."""
        partial, final = self._path(key + _PARTIAL), self._path(key)
        try:
            if not partial.exists() and final.exists():
                return  # finished before (a retried last chunk)
            self.directory.mkdir(parents=True, exist_ok=True)
            partial.touch(mode=0o600)  # an empty artifact has had no write
            descriptor = os.open(partial, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            partial.replace(final)
        except OSError as exc:
            raise _store_error(exc, self.directory) from exc

    def read(self, key: str, *, start: int, end: int) -> Iterator[bytes]:
        """Blocks of at most 1 MiB from ``start`` up to ``end``."""
        with self._path(key).open("rb") as file:
            file.seek(start)
            left = end - start
            while left > 0:
                block = file.read(min(READ_BLOCK_BYTES, left))
                if not block:
                    raise StoreUnavailable(f"artifact file {key} is shorter than recorded")
                left -= len(block)
                yield block

    def discard(self, key: str) -> None:
        """Remove ``<key>`` and ``<key>.partial``."""
        for path in (self._path(key), self._path(key + _PARTIAL)):
            path.unlink(missing_ok=True)

    def keys(self) -> Iterator[str]:
        """The keys of every file in the directory, finished or partial."""
        if not self.directory.is_dir():
            return
        seen: set[str] = set()
        for path in self.directory.iterdir():
            key = path.name.removesuffix(_PARTIAL)
            if path.is_file() and not key.startswith(".") and key not in seen:
                seen.add(key)
                yield key

    def free_bytes(self) -> int | None:
        """Free space on the directory's file system (of its nearest existing parent)."""
        probe = self.directory
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        return shutil.disk_usage(probe).free
