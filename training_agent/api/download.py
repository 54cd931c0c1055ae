"""Save a streamed answer body to a file, hashing it on the way (dataset downloads).

Memory stays at one chunk whatever the file's size. The file is created exclusively
(``xb``): the caller picks a fresh temporary name and renames it once it has checked
the result, so a half-written or corrupt file never sits where a good one is expected.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import httpx

from training_agent.errors import ProtocolError, StateError

CHUNK_BYTES = 1024 * 1024
CHECKSUM_HEADER = "X-Checksum-SHA256"


@dataclass(frozen=True)
class DownloadedFile:
    """What was written: its size, its SHA-256, and the checksum the server announced."""

    path: Path
    size_bytes: int
    sha256: str
    announced_sha256: str | None


async def save_body(response: httpx.Response, target: Path, *, what: str) -> DownloadedFile:
    """Write ``response``'s body to the new file ``target``; raises ``StateError`` or
    ``ProtocolError`` (an interrupted body: retryable as a ``TransportError`` upstream)."""
    digest = hashlib.sha256()
    size = 0
    try:
        with target.open("xb") as out:
            async for chunk in response.aiter_bytes(CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
    except OSError as exc:
        target.unlink(missing_ok=True)
        raise StateError(f"cannot write the download to {target}: {exc}") from exc
    except httpx.DecodingError as exc:
        target.unlink(missing_ok=True)
        raise ProtocolError(f"the backend's answer to {what} could not be decoded") from exc
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    announced = response.headers.get(CHECKSUM_HEADER)
    announced_sha256 = announced.strip().lower() if announced else None
    return DownloadedFile(target, size, digest.hexdigest(), announced_sha256)
