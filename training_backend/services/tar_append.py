"""Stream a ``.tar.gz`` with one more small file in it, without holding it in memory.

A gzip stream cannot be cut and spliced, so the archive is read member by member
(``tarfile`` in stream mode), each member's header and bytes are written out again
unchanged in content, the new file goes in before the end-of-archive blocks, and the
whole is compressed again on the fly. Memory stays at one chunk whatever the size.
A member's bytes are copied as they are, so the executable inside keeps its SHA-256.
"""

from __future__ import annotations

import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

CHUNK_BYTES = 1024 * 1024
#: zlib's default: about as small as level 9 on an executable, several times faster.
GZIP_LEVEL = 6
_GZIP_WBITS = 31  # deflate with a gzip header and trailer
_END_OF_ARCHIVE = tarfile.NUL * (2 * tarfile.BLOCKSIZE)


@dataclass(frozen=True)
class ExtraFile:
    """The file to add: its base name, bytes, permission bits and modification time."""

    name: str
    content: bytes
    mode: int
    mtime: float


def is_top_level(name: str, beside: str) -> bool:
    """Whether member ``name`` is ``beside`` in the archive's top folder (``stem/beside``),
    not a file of the same name deeper down (a one-folder build's ``_internal``).

    >>> is_top_level("stem/training-agent", "training-agent")
    True
    >>> is_top_level("stem/_internal/x/training-agent", "training-agent")
    False
    """
    path = PurePosixPath(name)
    return path.name == beside and len(path.parts) <= 2


class UnreadableArchive(Exception):
    """The release archive is not the kind its name says (or is damaged)."""


class TarGzAppender:
    """One pass over a ``.tar.gz``: opened (and its type checked) now, streamed later."""

    def __init__(self, path: Path, *, beside: str, folder: str) -> None:
        """Open ``path``; the extra file goes beside the top-level member named ``beside``
        (its base name), or into ``folder`` when there is none."""
        try:
            # Stream mode reads the first header here: a wrong file fails now, not mid-way.
            self._source = tarfile.open(path, mode="r|gz")  # noqa: SIM115 (stream closes it)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise UnreadableArchive(f"{path.name} is not a readable .tar.gz: {exc}") from exc
        self._beside = beside
        self._folder = folder

    def length(self, extra: ExtraFile) -> int | None:
        """Unknown before compressing: the answer is chunked."""
        return None

    def close(self) -> None:
        """Close the archive (``stream`` does it when it ends)."""
        self._source.close()

    def stream(self, extra: ExtraFile) -> Iterator[bytes]:
        """The archive plus ``extra``, gzip-compressed, in chunks."""
        compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS)
        try:
            for block in _tar_blocks(self._source, extra, self._beside, self._folder):
                if packed := compressor.compress(block):
                    yield packed
        finally:
            self.close()
        yield compressor.flush()


def _tar_blocks(
    source: tarfile.TarFile, extra: ExtraFile, beside: str, folder: str
) -> Iterator[bytes]:
    written = 0
    for member in source:
        if is_top_level(member.name, beside):
            folder = str(PurePosixPath(member.name).parent)
        for block in _member_blocks(source, member):
            written += len(block)
            yield block
    added = _extra_member(extra, folder)
    for block in (added.tobuf(tarfile.PAX_FORMAT), _padded(extra.content), _END_OF_ARCHIVE):
        written += len(block)
        yield block
    # Like tar itself, fill the last record, so any reader takes it.
    yield tarfile.NUL * (-written % tarfile.RECORDSIZE)


def _member_blocks(source: tarfile.TarFile, member: tarfile.TarInfo) -> Iterator[bytes]:
    yield member.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    if not member.isreg():
        return
    data = source.extractfile(member)
    if data is None:  # pragma: no cover - a regular member always has data
        return
    while chunk := data.read(CHUNK_BYTES):
        yield chunk
    yield tarfile.NUL * (-member.size % tarfile.BLOCKSIZE)


def _extra_member(extra: ExtraFile, folder: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(str(PurePosixPath(folder) / extra.name))
    info.size = len(extra.content)
    info.mode = extra.mode
    info.mtime = int(extra.mtime)
    return info


def _padded(content: bytes) -> bytes:
    return content + tarfile.NUL * (-len(content) % tarfile.BLOCKSIZE)
