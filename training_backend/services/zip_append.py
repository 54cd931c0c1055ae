"""Stream a ``.zip`` with one more small file in it, the original bytes copied verbatim.

A zip's members come first and its central directory (the index) last, so a file can
be added without touching any member: copy everything before the central directory
byte for byte (the executable's compressed bytes included), write the new member,
then the old central directory, the new member's entry, and an end record with the
new counts and offsets. The length is known up front (``Content-Length``).

Zip64 archives (over 4 GiB or 65,535 members) are refused; an agent build is far
smaller. Layout facts are from PKWARE's APPNOTE (sections 4.3.7, 4.3.12, 4.3.16).
"""

from __future__ import annotations

import struct
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from training_backend.services.tar_append import (
    CHUNK_BYTES,
    ExtraFile,
    UnreadableArchive,
    is_top_level,
)

_LOCAL = struct.Struct("<4s5H3L2H")
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_END = struct.Struct("<4s4H2LH")
_LOCAL_SIG, _CENTRAL_SIG, _END_SIG = b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06"
_VERSION = 20  # 2.0: what a stored (uncompressed) member needs
_MADE_BY_UNIX = (3 << 8) | _VERSION  # so unzip applies the permission bits
_MAX_COMMENT = 0xFFFF


class ZipAppender:
    """A zip whose layout was read now, streamed later with one more file."""

    def __init__(self, path: Path, *, beside: str, folder: str) -> None:
        """Read ``path``'s layout; the extra file goes beside the top-level member named
        ``beside`` (its base name), or into ``folder`` when there is none."""
        self._path = path
        self._layout = read_layout(path)
        self._folder = next(
            (str(PurePosixPath(n).parent) for n in self._layout.names if is_top_level(n, beside)),
            folder,
        )

    def _name(self, extra: ExtraFile) -> str:
        return str(PurePosixPath(self._folder) / extra.name)

    def length(self, extra: ExtraFile) -> int:
        """The byte length of ``stream(extra)``."""
        encoded = len(self._name(extra).encode("utf-8"))
        added = _LOCAL.size + encoded + len(extra.content) + _CENTRAL.size + encoded
        return self._layout.size + added

    def close(self) -> None:
        """Nothing is held open between the layout and the stream."""

    def stream(self, extra: ExtraFile) -> Iterator[bytes]:
        """The zip plus ``extra``, in chunks."""
        return zip_with(self._path, self._layout, extra, self._name(extra))


@dataclass(frozen=True)
class ZipLayout:
    """Where a zip's parts are: its central directory, its entry count and comment."""

    size: int
    directory_offset: int
    directory_size: int
    entries: int
    comment: bytes
    names: tuple[str, ...]


def read_layout(path: Path) -> ZipLayout:
    """The layout of the zip at ``path``; ``UnreadableArchive`` if it is not a plain zip."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = tuple(archive.namelist())
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - _END.size - _MAX_COMMENT))
            tail = handle.read()
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnreadableArchive(f"{path.name} is not a readable .zip: {exc}") from exc
    at = tail.rfind(_END_SIG)
    if at < 0:
        raise UnreadableArchive(f"{path.name} has no end-of-central-directory record")
    _, _, _, _, entries, dir_size, dir_offset, comment_len = _END.unpack_from(tail, at)
    comment = tail[at + _END.size : at + _END.size + comment_len]
    if dir_offset + dir_size + _END.size + comment_len != size:
        raise UnreadableArchive(
            f"{path.name} is a zip64 or multi-part zip; rebuild it as a plain zip"
        )
    return ZipLayout(size, dir_offset, dir_size, entries, comment, names)


def zip_with(path: Path, layout: ZipLayout, extra: ExtraFile, name: str) -> Iterator[bytes]:
    """The zip at ``path`` with ``extra`` added as ``name``, in chunks."""
    encoded = name.encode("utf-8")
    crc = zlib.crc32(extra.content)
    dos_time, dos_date = _dos_stamp(extra.mtime)
    sizes = (crc, len(extra.content), len(extra.content))
    with path.open("rb") as handle:
        yield from _copy(handle, layout.directory_offset)
        yield _LOCAL.pack(_LOCAL_SIG, _VERSION, 0, 0, dos_time, dos_date, *sizes, len(encoded), 0)
        yield encoded + extra.content
        yield from _copy(handle, layout.directory_size)
    attributes = (0o100000 | extra.mode) << 16  # a regular file with these permissions
    yield (
        _CENTRAL.pack(
            _CENTRAL_SIG,
            _MADE_BY_UNIX,
            _VERSION,
            0,
            0,
            dos_time,
            dos_date,
            *sizes,
            len(encoded),
            0,
            0,
            0,
            0,
            attributes,
            layout.directory_offset,
        )
        + encoded
    )
    added = _LOCAL.size + len(encoded) + len(extra.content)
    entries = layout.entries + 1
    directory_size = layout.directory_size + _CENTRAL.size + len(encoded)
    directory_offset = layout.directory_offset + added
    comment = layout.comment
    yield (
        _END.pack(_END_SIG, 0, 0, entries, entries, directory_size, directory_offset, len(comment))
        + comment
    )


def _copy(handle: BinaryIO, count: int) -> Iterator[bytes]:
    while count > 0:
        chunk = handle.read(min(CHUNK_BYTES, count))
        if not chunk:
            raise UnreadableArchive("the archive became shorter while it was being sent")
        count -= len(chunk)
        yield chunk


def _dos_stamp(mtime: float) -> tuple[int, int]:
    # MS-DOS time has two-second resolution and starts in 1980.
    t = time.gmtime(max(mtime, 315_532_800))
    return (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2), (
        ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday
    )
