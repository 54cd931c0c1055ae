"""An output as the bytes that go up: a file as it is, a directory as one tar archive.

Both are *sources*: a ``size``, ``read(offset, length)`` at any offset (a resumed upload
starts in the middle), and a ``fingerprint`` (names, sizes, modification times) that
changes when the content most likely did, checked while the upload runs.

A directory is sent as a tar archive that is never built: ``TarSource`` lays the
archive out from the directory listing (a header per entry, the file's bytes, padding
to 512, two zero blocks at the end) and ``read`` produces any range of it from those
pieces, reading the files in place. The layout is deterministic (entries sorted,
owner 0, no user names, the modes reduced to 0644/0755, whole-second mtimes), so the
SHA-256 pass and the upload pass, and a pass after a restart, see the same bytes, and
a resumed upload can start at any offset without reading what went before.

Rejected: writing the archive once into the job dir and uploading that file (simple,
but it doubles the disk a model takes, tens of GB for a big one, on a machine whose
disk the next job needs, and costs a full extra write); building it in memory (a model
does not fit). Symlinks and special files in the directory are left out (a link could
point outside the work dir); ``skipped`` counts them so the job log can say so.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import stat
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, Self

BLOCK = tarfile.BLOCKSIZE  # 512
HASH_READ_BYTES = 4 * 1024 * 1024


class OutputChanged(Exception):
    """The output no longer matches what was hashed (a file shrank, grew or vanished)."""


class Source(Protocol):
    """The bytes of one output, readable at any offset."""

    size: int
    fingerprint: str
    skipped: int

    def read(self, offset: int, length: int) -> bytes: ...

    def current_fingerprint(self) -> str: ...

    def close(self) -> None: ...


def open_source(path: Path, *, is_dir: bool) -> Source:
    """The source for ``path``; raises ``OSError`` when it cannot be read."""
    return TarSource(path) if is_dir else FileSource(path)


class _Closing:
    """``with source:`` closes the file it holds open."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class FileSource(_Closing):
    """One regular file."""

    skipped = 0

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO = path.open("rb")
        info = os.fstat(self._file.fileno())
        self.size = info.st_size
        self.fingerprint = _file_fingerprint(info)

    def read(self, offset: int, length: int) -> bytes:
        self._file.seek(offset)
        data = self._file.read(min(length, self.size - offset))
        if len(data) < min(length, self.size - offset):
            raise OutputChanged(f"{self.path} became shorter while it was read")
        return data

    def current_fingerprint(self) -> str:
        try:
            return _file_fingerprint(self.path.stat())
        except OSError:
            return "gone"

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True)
class _Piece:
    """A stretch of the archive: fixed bytes (a header, padding) or a file's contents."""

    start: int
    length: int
    data: bytes | None = None
    path: Path | None = None


class TarSource(_Closing):
    """A directory as a deterministic tar archive (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._pieces: list[_Piece] = []
        self._starts: list[int] = []
        self._open: tuple[Path, BinaryIO] | None = None
        listing, self.skipped = _scan(root)
        self.fingerprint = _listing_fingerprint(listing)
        self.size = self._lay_out(listing)

    def _lay_out(self, listing: Listing) -> int:
        offset = 0
        for name, path, info in listing:
            header = _header(name, info)
            offset = self._add(_Piece(offset, len(header), data=header))
            if stat.S_ISREG(info.st_mode) and info.st_size:
                offset = self._add(_Piece(offset, info.st_size, path=path))
                padding = -info.st_size % BLOCK
                if padding:
                    offset = self._add(_Piece(offset, padding, data=bytes(padding)))
        return self._add(_Piece(offset, 2 * BLOCK, data=bytes(2 * BLOCK)))

    def _add(self, piece: _Piece) -> int:
        self._pieces.append(piece)
        self._starts.append(piece.start)
        return piece.start + piece.length

    def read(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self.size)
        parts: list[bytes] = []
        index = bisect.bisect_right(self._starts, offset) - 1
        position = offset
        while position < end:
            piece = self._pieces[index]
            inside = position - piece.start
            take = min(piece.length - inside, end - position)
            if piece.data is not None:
                parts.append(piece.data[inside : inside + take])
            else:
                assert piece.path is not None
                parts.append(self._read_file(piece.path, inside, take))
            position += take
            index += 1
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _read_file(self, path: Path, offset: int, length: int) -> bytes:
        if self._open is None or self._open[0] != path:
            self.close()
            try:
                self._open = (path, path.open("rb"))
            except FileNotFoundError as exc:
                raise OutputChanged(f"{path} was removed while it was read") from exc
        file = self._open[1]
        file.seek(offset)
        data = file.read(length)
        if len(data) < length:
            raise OutputChanged(f"{path} became shorter while it was read")
        return data

    def current_fingerprint(self) -> str:
        try:
            return _listing_fingerprint(_scan(self.root)[0])
        except OSError:
            return "gone"

    def close(self) -> None:
        if self._open is not None:
            self._open[1].close()
            self._open = None


Listing = list[tuple[str, Path, os.stat_result]]


def _scan(root: Path) -> tuple[Listing, int]:
    """(name in the archive, path, stat) of every directory and regular file under
    ``root``, sorted, and how many other entries (symlinks, sockets) were left out."""
    entries: Listing = []
    skipped = 0

    def walk(folder: Path, name: str) -> None:
        nonlocal skipped
        entries.append((name, folder, folder.stat()))
        with os.scandir(folder) as scan:
            children = sorted(scan, key=lambda entry: entry.name)
        for child in children:
            info = child.stat(follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                walk(Path(child.path), f"{name}/{child.name}")
            elif stat.S_ISREG(info.st_mode):
                entries.append((f"{name}/{child.name}", Path(child.path), info))
            else:
                skipped += 1

    walk(root, root.name or "output")
    return entries, skipped


class HashStopped(Exception):
    """``sha256_of`` was told to stop (the agent is stopping)."""


def sha256_of(
    source: Source,
    on_progress: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
) -> str:
    """The SHA-256 (hex) of every byte of ``source``; ``on_progress(bytes_done)`` as it goes.

    Meant for a worker thread: setting ``stop`` makes it raise ``HashStopped`` within one
    read, so a stopping agent does not wait for the rest of a big model to be read.
    """
    digest = hashlib.sha256()
    for offset in range(0, source.size, HASH_READ_BYTES):
        if stop is not None and stop.is_set():
            raise HashStopped(f"stopped after {offset} bytes")
        digest.update(source.read(offset, HASH_READ_BYTES))
        if on_progress is not None:
            on_progress(min(offset + HASH_READ_BYTES, source.size))
    return digest.hexdigest()


def _header(name: str, info: os.stat_result) -> bytes:
    member = tarfile.TarInfo(name)
    if stat.S_ISDIR(info.st_mode):
        member.type, member.mode, member.size = tarfile.DIRTYPE, 0o755, 0
    else:
        executable = info.st_mode & 0o111
        member.type, member.size = tarfile.REGTYPE, info.st_size
        member.mode = 0o755 if executable else 0o644
    member.mtime = int(info.st_mtime)
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    return member.tobuf(tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")


def _file_fingerprint(info: os.stat_result) -> str:
    return f"{info.st_size}:{info.st_mtime_ns}:{info.st_ino}"


def _listing_fingerprint(listing: Listing) -> str:
    # Every entry's name, size and mtime: a directory's mtime is in its header too.
    digest = hashlib.sha256()
    for name, _path, info in listing:
        line = f"{name}\0{_file_fingerprint(info)}\n"
        digest.update(line.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()
