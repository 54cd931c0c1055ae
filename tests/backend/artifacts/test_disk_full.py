"""A full disk: the kernel's own ENOSPC (a partial file that is ``/dev/full``) becomes 507
with a sentence, nothing is counted as stored, and the same chunk goes in once there is
room; a declaration larger than the free space is 507 at once."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session

from tests.backend.artifacts.support import CHUNK, declare, put_chunk
from training_backend.db.models import Artifact, TrainingJob
from training_backend.services.artifact_store.errors import StoreFull
from training_backend.services.artifact_store.local import LocalStore
from training_backend.settings import BackendSettings

CONTENT = os.urandom(2 * CHUNK)
needs_dev_full = pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")


@needs_dev_full
def test_enospc_from_the_kernel_is_store_full_with_a_sentence(tmp_path: Path) -> None:
    (tmp_path / "k.partial").symlink_to("/dev/full")
    with pytest.raises(StoreFull) as full:
        LocalStore(tmp_path).write("k", {}, offset=0, data=b"abc", last=False)
    assert str(full.value).startswith(f"The backend's artifact storage ({tmp_path}) is full")


@needs_dev_full
async def test_a_chunk_on_a_full_disk_is_507_and_goes_in_once_there_is_room(
    client: httpx.AsyncClient,
    running: tuple[TrainingJob, str],
    db: Session,
    settings: BackendSettings,
) -> None:
    job, token = running
    artifact_id = (await declare(client, job.id, token, CONTENT)).json()["artifact_id"]
    artifact = db.get(Artifact, artifact_id)
    assert artifact is not None and settings.artifacts_dir is not None
    partial = settings.artifacts_dir / f"{artifact.storage_key}.partial"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.symlink_to("/dev/full")

    full = await put_chunk(client, job.id, token, artifact_id, 0, CONTENT[:CHUNK])
    partial.unlink()  # the operator freed space
    again = await put_chunk(client, job.id, token, artifact_id, 0, CONTENT[:CHUNK])

    assert (full.status_code, full.json()["code"]) == (507, "INSUFFICIENT_STORAGE")
    assert "the upload goes on once the operator frees space" in full.json()["error"]
    assert (again.status_code, again.json()["offset"]) == (200, CHUNK)


async def test_a_declaration_larger_than_the_free_space_is_507(
    client: httpx.AsyncClient,
    running: tuple[TrainingJob, str],
    app: FastAPI,
    configure: Callable[..., None],
) -> None:
    job, token = running
    store = app.state.artifact_store
    free = store.free_bytes()
    assert isinstance(free, int) and free > 0
    configure(artifact_quota_gb=1e6)  # the quota is not what refuses it
    body = {"size_bytes": 2 * free + 10**9, "name": "huge.bin"}  # the disk is shared: margin

    answer = await declare(client, job.id, token, b"", **body)

    assert (answer.status_code, answer.json()["code"]) == (507, "INSUFFICIENT_STORAGE")
    assert "free, less than this artifact's" in answer.json()["error"]
