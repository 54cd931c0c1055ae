"""Artifacts in a local directory: ``<key>.partial`` while it arrives, ``<key>`` once whole.

Each chunk is written at its offset with ``pwrite`` straight from the request's bytes,
so the backend holds one chunk in memory, never a whole file. The part of a chunk that
starts at a 4 KiB boundary in memory and in the file goes with ``O_DIRECT``, past the
page cache: copying into new page-cache pages was half of the backend's CPU per uploaded
GB (docs/benchmarks.md); the rest (an unaligned start or end, or a file system that
refuses ``O_DIRECT``) goes through the page cache as before. The file is flushed to
disk (``fsync``) once, when it is finished: an operating-system crash mid-upload can
lose acknowledged chunks, and the SHA-256 check at the end then discards the upload and
the agent sends it again. That trade keeps every chunk's write cheap.

Several backend processes may share the directory (a network file system): writes come
in order per artifact, and the final ``rename`` is atomic.
"""

from __future__ import annotations

import ctypes
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
#: What O_DIRECT needs of a write's file offset, memory address and length here.
DIRECT_ALIGNMENT = 4096
_O_DIRECT: int = getattr(os, "O_DIRECT", 0)  # Linux and a few others; 0: never direct


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


def _write_all(path: Path, flags: int, view: memoryview, offset: int) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | flags, 0o600)
    try:
        while view:
            written = os.pwrite(descriptor, view, offset)
            view, offset = view[written:], offset + written
    finally:
        os.close(descriptor)


def _direct_length(view: memoryview, offset: int) -> int:
    """How many leading bytes of ``view`` may go with ``O_DIRECT`` at ``offset``.

    Only a writable buffer tells its address (``ctypes``); the chunks the upload route
    receives are in page-aligned buffers (``ChunkBuffers``), other bytes go buffered.
    """
    length = len(view) - len(view) % DIRECT_ALIGNMENT
    if view.readonly or offset % DIRECT_ALIGNMENT or length == 0:
        return 0
    address = ctypes.addressof(ctypes.c_char.from_buffer(view))
    return 0 if address % DIRECT_ALIGNMENT else length


class LocalStore:
    """An ``ArtifactStore`` in ``directory`` (created on first use)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._direct = bool(_O_DIRECT)  # off once the file system refuses it

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
            view = memoryview(data).cast("B")
            direct = _direct_length(view, offset) if self._direct else 0
            if direct:
                written = self._write_direct(partial, view[:direct], offset)
                view, offset = view[written:], offset + written
            if view:
                _write_all(partial, 0, view, offset)
        except OSError as exc:
            raise _store_error(exc, self.directory) from exc
        return state

    def _write_direct(self, partial: Path, view: memoryview, offset: int) -> int:
        """``view`` written with ``O_DIRECT``; 0 (and never again) if the file system refuses."""
        try:
            _write_all(partial, _O_DIRECT, view, offset)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            self._direct = False  # e.g. a file system without O_DIRECT: the page cache it is
            return 0
        return len(view)

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
