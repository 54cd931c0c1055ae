"""An in-memory backend that speaks the ``artifacts`` extension, for unit tests.

It keeps the protocol's promises (docs/protocol.md): a declaration is idempotent on
name and SHA-256; a chunk is stored at exactly its offset, one the server holds answers
success without writing, a gap answers 409 ``ARTIFACT_GAP``; the last byte triggers
verification, and a mismatch discards the artifact with 422 ``ARTIFACT_CORRUPT``. Tests
script faults through ``faults`` (a list of callables run before each chunk is stored)
and read what arrived through ``received_bytes`` and ``stored``.

    server = FakeArtifactServer()
    client = server.client()   # a BackendClient whose transport is this server
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.fake_backend import API_KEY, IDENTITY
from training_agent.api import BackendClient

_DECLARE = re.compile(r"^/api/training/local/(?P<job>[^/]+)/artifacts$")
_CHUNK = re.compile(r"^/api/training/local/(?P<job>[^/]+)/artifacts/(?P<id>[^/]+)$")

# A fault sees the artifact and the chunk's offset and may answer instead of the server
# (return a response), raise (httpx.ConnectError: no answer), or return None to go on.
Fault = Callable[["StoredArtifact", int, bytes], httpx.Response | None]


@dataclass
class StoredArtifact:
    """One artifact as the fake server holds it."""

    id: str
    job_id: str
    name: str
    kind: str
    size_bytes: int
    sha256: str
    data: bytearray = field(default_factory=bytearray)
    complete: bool = False


@dataclass
class FakeArtifactServer:
    """The artifact routes of a backend, in memory; everything else answers 200."""

    artifacts: dict[str, StoredArtifact] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    received_bytes: int = 0  # chunk bytes that arrived, stored or not
    corrupt_next: int = 0  # flip a byte of the next N artifacts at their last chunk
    statuses: list[dict[str, Any]] = field(default_factory=list)
    on_status: Callable[[httpx.Request], httpx.Response] | None = None
    max_chunk_bytes: int | None = None  # what declarations answer (None: not said)

    def client(self) -> BackendClient:
        return BackendClient(
            base_url="http://backend.test",
            api_key=API_KEY,
            identity=IDENTITY,
            transport=httpx.MockTransport(self),
        )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if request.method == "POST" and (match := _DECLARE.match(path)):
            return self._declare(match["job"], json.loads(request.content))
        if request.method == "PUT" and (match := _CHUNK.match(path)):
            offset = int(request.url.params["offset"])
            return self._chunk(match["id"], offset, request.content)
        if request.method == "PATCH" and path.endswith("/status"):
            self.statuses.append(json.loads(request.content))
            if self.on_status is not None:
                return self.on_status(request)
        return httpx.Response(200, json={"success": True})

    def complete(self) -> list[StoredArtifact]:
        return [artifact for artifact in self.artifacts.values() if artifact.complete]

    def chunk_offsets(self) -> list[int]:
        """The offset of every chunk request, in order."""
        return [int(r.url.params["offset"]) for r in self.requests if r.method == "PUT"]

    def _declare(self, job_id: str, body: dict[str, Any]) -> httpx.Response:
        for artifact in self.artifacts.values():
            if artifact.name == body["name"] and artifact.sha256 == body["sha256"]:
                return self._answer(artifact)
        artifact = StoredArtifact(
            id=f"art_{len(self.artifacts) + 1}",
            job_id=job_id,
            name=body["name"],
            kind=body["kind"],
            size_bytes=body["size_bytes"],
            sha256=body["sha256"],
        )
        self.artifacts[artifact.id] = artifact
        return self._answer(artifact)

    def _answer(self, artifact: StoredArtifact) -> httpx.Response:
        body = {"artifact_id": artifact.id, "offset": len(artifact.data)}
        if self.max_chunk_bytes is not None:
            body["max_chunk_bytes"] = self.max_chunk_bytes
        return httpx.Response(200, json=body)

    def _chunk(self, artifact_id: str, offset: int, chunk: bytes) -> httpx.Response:
        artifact = self.artifacts.get(artifact_id)
        if artifact is None:
            return _error(404, "ARTIFACT_NOT_FOUND", "no such artifact")
        self.received_bytes += len(chunk)
        for fault in list(self.faults):
            answer = fault(artifact, offset, chunk)
            if answer is not None:
                return answer
        held = len(artifact.data)
        if offset + len(chunk) <= held or artifact.complete:
            return httpx.Response(200, json={"offset": held, "complete": artifact.complete})
        if offset != held:
            return _error(409, "ARTIFACT_GAP", "a gap", expected_offset=held)
        artifact.data += chunk
        if len(artifact.data) >= artifact.size_bytes:
            return self._verify(artifact)
        return httpx.Response(200, json={"offset": len(artifact.data), "complete": False})

    def _verify(self, artifact: StoredArtifact) -> httpx.Response:
        if self.corrupt_next > 0:
            self.corrupt_next -= 1
            artifact.data[0] ^= 0xFF
        if hashlib.sha256(artifact.data).hexdigest() != artifact.sha256:
            del self.artifacts[artifact.id]
            return _error(422, "ARTIFACT_CORRUPT", "the upload's SHA-256 does not match")
        artifact.complete = True
        return httpx.Response(200, json={"offset": artifact.size_bytes, "complete": True})


def _error(status: int, code: str, sentence: str, **extra: Any) -> httpx.Response:
    return httpx.Response(status, json={"error": sentence, "code": code, **extra})
