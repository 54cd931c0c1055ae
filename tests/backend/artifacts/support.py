"""Helpers of the artifact tests: declare an upload, send chunks, wrap the store."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.backend.support import AGENT_ID, bearer
from tests.support.backend import BackendProcess
from tests.support.e2e import make_user_and_key, submit
from training_backend.services.artifact_store import ArtifactStore, UploadState

CHUNK = 64 * 1024


def uploads(job_id: str) -> str:
    return f"/api/training/local/{job_id}/artifacts"


def declaration(content: bytes, name: str = "adapter.tar", **overrides: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "kind": "adapter",
        "size_bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    }
    return body | overrides


async def declare(
    client: httpx.AsyncClient, job_id: str, token: str, content: bytes, **overrides: Any
) -> httpx.Response:
    body = declaration(content, **overrides)
    return await client.post(uploads(job_id), json=body, headers=bearer(token))


async def put_chunk(
    client: httpx.AsyncClient, job_id: str, token: str, artifact_id: str, offset: int, data: bytes
) -> httpx.Response:
    return await client.put(
        f"{uploads(job_id)}/{artifact_id}",
        params={"offset": offset},
        content=data,
        headers=bearer(token),
    )


async def upload_all(
    client: httpx.AsyncClient,
    job_id: str,
    token: str,
    content: bytes,
    chunk: int = CHUNK,
    **overrides: Any,
) -> httpx.Response:
    """Declare ``content`` and send it in ``chunk``-sized pieces; the last answer."""
    answer = await declare(client, job_id, token, content, **overrides)
    assert answer.is_success, answer.text
    artifact_id = answer.json()["artifact_id"]
    for offset in range(answer.json()["offset"], len(content), chunk):
        answer = await put_chunk(
            client, job_id, token, artifact_id, offset, content[offset : offset + chunk]
        )
    return answer


def claimed_job(url: str, key: str, job_id: str) -> str:
    """Claim ``job_id`` on the backend at ``url`` with ``key``; the job token."""
    headers = {"Authorization": f"Bearer {key}", "X-Agent-ID": AGENT_ID}
    answer = httpx.post(f"{url}/api/training/agent/claim/{job_id}", headers=headers)
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["job_token"]
    return token


def served_job(backend: BackendProcess, tmp_path: Path, user: str) -> tuple[str, str, str]:
    """A new user of ``backend`` with a claimed job: ``(api_key, job_id, job_token)``."""
    key = make_user_and_key(backend, user)
    job_id = submit(backend, tmp_path, user, {"type": "command", "command": ["true"]})
    return key, job_id, claimed_job(backend.url, key, job_id)


def send_over_http(url: str, job_id: str, token: str, content: bytes, **overrides: Any) -> str:
    """Declare ``content`` on the served backend and send it in 8 MiB chunks; its id."""
    auth = bearer(token)
    uploads_url = f"{url}{uploads(job_id)}"
    answer = httpx.post(uploads_url, json=declaration(content, **overrides), headers=auth)
    assert answer.is_success, answer.text
    artifact_id: str = answer.json()["artifact_id"]
    for offset in range(0, len(content), 8 * 1024 * 1024):
        answer = httpx.put(
            f"{uploads_url}/{artifact_id}",
            params={"offset": offset},
            content=content[offset : offset + 8 * 1024 * 1024],
            headers=auth,
            timeout=60,
        )
        assert answer.is_success, answer.text
    return artifact_id


@dataclass
class SpyStore:
    """An ``ArtifactStore`` that records each write and can be told to fail."""

    inner: ArtifactStore
    writes: list[tuple[str, int, int]] = field(default_factory=list)
    fail_with: Exception | None = None

    @property
    def location(self) -> str:
        return self.inner.location

    def write(
        self, key: str, state: UploadState, *, offset: int, data: bytes, last: bool
    ) -> UploadState:
        if self.fail_with is not None:
            raise self.fail_with
        self.writes.append((key, offset, len(data)))
        return self.inner.write(key, state, offset=offset, data=data, last=last)

    def finish(self, key: str, state: UploadState) -> None:
        self.inner.finish(key, state)

    def read(self, key: str, *, start: int, end: int) -> Iterator[bytes]:
        return self.inner.read(key, start=start, end=end)

    def discard(self, key: str) -> None:
        self.inner.discard(key)

    def keys(self) -> Iterator[str]:
        return self.inner.keys()

    def free_bytes(self) -> int | None:
        return self.inner.free_bytes()
