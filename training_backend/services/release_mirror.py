"""Agent releases fetched on first use from ``releases_url`` (``TRAINING_BACKEND_RELEASES_URL``).

When an archive the page or an installer asks for is not in the releases directory and
``releases_url`` is set, the backend

1. reads that release's ``SHA256SUMS`` (``<releases_url>/SHA256SUMS``; kept in memory
   for :data:`SUMS_TTL_S`), which also gives the page its checksum before any archive
   is fetched;
2. downloads the archive into a hidden file of the releases directory, hashing it as it
   arrives (at most :data:`MAX_ARCHIVE_BYTES`);
3. keeps it only when its SHA-256 is the one listed, with its signature
   (``<archive>.sig``) when the release has one, renaming it into place and adding its
   line to the directory's own ``SHA256SUMS`` (what ``releases add`` does), so from
   then on it is served from disk like any other.

Every failure (the server down, no ``SHA256SUMS``, the archive not listed, a tampered or
truncated download, a full disk) is one sentence: the answer's ``error`` (502
``RELEASE_FETCH_FAILED``) and one warning in the log. A failed fetch is not tried again
for :data:`RETRY_AFTER_S`, so a flood of page views cannot hammer the upstream server.
One fetch per archive runs at a time; the other requests wait for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx

from training_backend.errors import ApiError
from training_backend.services.downloads import (
    CHECKSUMS_FILE,
    Artifact,
    UpstreamSha256,
    parse_sums,
)
from training_backend.services.releases import SIGNATURE_SUFFIX, record_checksums
from training_backend.settings import BackendSettings

logger = logging.getLogger(__name__)

SUMS_TTL_S = 300.0
RETRY_AFTER_S = 60.0
MAX_ARCHIVE_BYTES = 1024**3  # a release is ~35 MiB; a hostile server cannot fill the disk
MAX_SUMS_BYTES = 1024 * 1024
CHUNK_BYTES = 1024 * 1024
TIMEOUT = httpx.Timeout(60.0, connect=10.0)
CODE = "RELEASE_FETCH_FAILED"


def releases_folder_url(settings: BackendSettings) -> str | None:
    """``releases_url`` with ``{version}`` filled in; None when it is not set."""
    if settings.releases_url is None:
        return None
    return settings.releases_url.replace("{version}", settings.agent_version)


class FetchFailed(Exception):
    """One sentence saying what went wrong with the upstream release."""


@dataclass
class ReleaseMirror:
    """The fetches of this process: their locks, the checksums read, recent failures."""

    transport: httpx.BaseTransport | None = None
    clock: Callable[[], float] = time.monotonic
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _fetching: dict[str, threading.Lock] = field(default_factory=dict)
    _sums: dict[str, tuple[float, dict[str, str]]] = field(default_factory=dict)
    _failed: dict[str, tuple[float, str]] = field(default_factory=dict)
    _signatures: dict[str, tuple[float, str | None]] = field(default_factory=dict)

    def upstream_for(self, settings: BackendSettings) -> UpstreamSha256 | None:
        """How the listings learn the checksum of an archive not fetched yet (None
        without ``releases_url``)."""
        if settings.releases_url is None:
            return None
        return lambda artifact: self.upstream_sha256(settings, artifact)

    def upstream_sha256(self, settings: BackendSettings, artifact: Artifact) -> str:
        """The archive's SHA-256 as the upstream ``SHA256SUMS`` lists it (502 if it cannot)."""
        folder = self._folder(settings)
        return self._guarded(f"sums {folder}", lambda: self._listed(folder, artifact))

    def upstream_signature(self, settings: BackendSettings, artifact: Artifact) -> str | None:
        """The release's ``<archive>.sig`` (kept in memory like the sums); None without one."""
        url = f"{self._folder(settings)}/{artifact.filename}{SIGNATURE_SUFFIX}"
        cached = self._signatures.get(url)
        if cached is not None and self.clock() - cached[0] < SUMS_TTL_S:
            return cached[1]
        try:
            with self._client() as client:
                body = b"".join(_download(client, url, MAX_SUMS_BYTES))
            signature: str | None = body.decode("ascii", errors="replace").strip()
        except FetchFailed:
            signature = None
        self._signatures[url] = (self.clock(), signature)
        return signature

    def ensure(self, settings: BackendSettings, artifact: Artifact) -> None:
        """Make sure ``artifact`` is in the releases directory: fetch it when it is not
        and ``releases_url`` is set (502 saying why when that fails); else 404."""
        if artifact.exists():
            return
        if settings.releases_url is None:
            raise artifact.missing_error()
        folder = self._folder(settings)
        with self._lock:
            lock = self._fetching.setdefault(artifact.filename, threading.Lock())
        with lock:  # one download per archive; the others wait and find the file
            if not artifact.exists():
                self._guarded(artifact.filename, lambda: self._fetch(folder, artifact))

    # -- one step each ------------------------------------------------------------------

    def _folder(self, settings: BackendSettings) -> str:
        folder = releases_folder_url(settings)
        assert folder is not None  # the callers checked releases_url
        return folder

    def _guarded(self, key: str, action: Callable[[], str | None]) -> str:
        """Run ``action`` unless it failed less than RETRY_AFTER_S ago; failures become
        502 with their sentence (logged once)."""
        now = self.clock()
        failed = self._failed.get(key)
        if failed is not None and now - failed[0] < RETRY_AFTER_S:
            raise ApiError(502, CODE, failed[1])
        try:
            result = action()
        except FetchFailed as exc:
            sentence = str(exc)
            self._failed[key] = (now, sentence)
            logger.warning("release mirror: %s", sentence)
            raise ApiError(502, CODE, sentence) from exc
        self._failed.pop(key, None)
        return result or ""

    def _listed(self, folder: str, artifact: Artifact) -> str:
        sums = self._read_sums(folder)
        digest = sums.get(artifact.filename)
        if digest is None:
            raise FetchFailed(
                f"{folder}/{CHECKSUMS_FILE} does not list {artifact.filename}: check "
                "TRAINING_BACKEND_RELEASES_URL and TRAINING_BACKEND_AGENT_VERSION, or add "
                f"the archive with: training-backend releases add {artifact.filename}"
            )
        return digest

    def _read_sums(self, folder: str) -> dict[str, str]:
        cached = self._sums.get(folder)
        if cached is not None and self.clock() - cached[0] < SUMS_TTL_S:
            return cached[1]
        url = f"{folder}/{CHECKSUMS_FILE}"
        with self._client() as client:
            body = b"".join(_download(client, url, MAX_SUMS_BYTES))
        sums = parse_sums(body.decode("utf-8", errors="replace"))
        self._sums[folder] = (self.clock(), sums)
        return sums

    def _fetch(self, folder: str, artifact: Artifact) -> None:
        expected = self._listed(folder, artifact)
        url = f"{folder}/{artifact.filename}"
        partial = artifact.path.with_name(f".{artifact.filename}.fetching")
        digest = hashlib.sha256()
        try:
            artifact.releases_dir.mkdir(parents=True, exist_ok=True)
            with self._client() as client, partial.open("wb") as handle:
                for chunk in _download(client, url, MAX_ARCHIVE_BYTES):
                    digest.update(chunk)
                    handle.write(chunk)
            if digest.hexdigest() != expected:
                raise FetchFailed(
                    f"{url} does not match its line in {folder}/{CHECKSUMS_FILE} (a damaged, "
                    "truncated or tampered download); nothing was kept: check that release"
                )
            self._fetch_signature(folder, artifact)
            os.replace(partial, artifact.path)
            record_checksums(artifact.releases_dir, {artifact.filename: expected})
        except OSError as exc:
            raise FetchFailed(
                f"cannot store {artifact.filename} in {artifact.releases_dir} "
                f"({exc.strerror or exc}): free some space or fix its permissions"
            ) from exc
        finally:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
        logger.info("release mirror: fetched %s from %s", artifact.filename, url)

    def _fetch_signature(self, folder: str, artifact: Artifact) -> None:
        """Keep ``<archive>.sig`` when the release has one (agents check it, not we)."""
        name = artifact.filename + SIGNATURE_SUFFIX
        try:
            with self._client() as client:
                signature = b"".join(_download(client, f"{folder}/{name}", MAX_SUMS_BYTES))
        except FetchFailed as exc:
            logger.info("release mirror: no signature for %s (%s)", artifact.filename, exc)
            return
        (artifact.releases_dir / name).write_bytes(signature)

    def _client(self) -> httpx.Client:
        return httpx.Client(timeout=TIMEOUT, follow_redirects=True, transport=self.transport)


def _download(client: httpx.Client, url: str, limit: int) -> Iterator[bytes]:
    """The body of ``url`` in chunks; a refusal, a transport error or more than ``limit``
    bytes is :class:`FetchFailed`."""
    received = 0
    try:
        with client.stream("GET", url) as answer:
            if answer.status_code != 200:
                raise FetchFailed(f"{url} answered HTTP {answer.status_code}: check the release")
            for chunk in answer.iter_bytes(CHUNK_BYTES):
                received += len(chunk)
                if received > limit:
                    raise FetchFailed(f"{url} is larger than {limit} bytes: not a release")
                yield chunk
    except httpx.HTTPError as exc:
        raise FetchFailed(f"cannot fetch {url} ({type(exc).__name__}: {exc})") from exc
