"""``jobs artifacts``, ``jobs download``, ``jobs delete`` and ``artifacts gc``, run as real
processes on a served backend's database and artifact folder."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.backend.artifacts.support import declaration, send_over_http, served_job, uploads
from tests.backend.support import bearer
from tests.support.backend import BackendProcess, CliFailed, start_backend

CONTENT = os.urandom(9 * 1024 * 1024 + 11)


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[BackendProcess]:
    env = {"TRAINING_BACKEND_ARTIFACT_ABANDONED_HOURS": "0.0001"}  # a third of a second
    with start_backend(tmp_path / "backend", env=env) as process:
        yield process


def artifacts_dir(backend: BackendProcess) -> Path:
    assert backend.env is not None  # start_backend always names the folder
    return Path(backend.env["TRAINING_BACKEND_ARTIFACTS_DIR"])


def stored(backend: BackendProcess) -> list[str]:
    folder = artifacts_dir(backend)
    return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []


def test_an_operator_lists_and_downloads_a_jobs_artifact(
    backend: BackendProcess, tmp_path: Path
) -> None:
    _, job_id, token = served_job(backend, tmp_path, "alice")
    artifact_id = send_over_http(backend.url, job_id, token, CONTENT, name="model.bin")
    httpx.post(
        f"{backend.url}{uploads(job_id)}",
        json=declaration(b"later", name="later.txt"),
        headers=bearer(token),
    )

    listed = backend.cli("jobs", "artifacts", job_id)
    saved = backend.cli("jobs", "download", job_id, "model.bin", "--output", str(tmp_path))
    with pytest.raises(CliFailed) as unknown:
        backend.cli("jobs", "download", job_id, "nothing.bin")
    with pytest.raises(CliFailed) as unfinished:
        backend.cli("jobs", "download", job_id, "later.txt")

    sha256 = hashlib.sha256(CONTENT).hexdigest()
    assert f"{artifact_id}  model.bin  adapter  {len(CONTENT)}  {sha256}  complete" in listed
    assert "later.txt  adapter  5" in listed and "0/5 bytes" in listed
    assert Path(saved.strip()) == tmp_path / "model.bin"
    assert (tmp_path / "model.bin").read_bytes() == CONTENT
    assert "no artifact named 'nothing.bin' (it has: model.bin, later.txt)" in unknown.value.stderr
    assert "still being uploaded (0 of 5 bytes): try again later" in unfinished.value.stderr


def test_gc_removes_abandoned_uploads_and_orphaned_bytes_and_keeps_the_rest(
    backend: BackendProcess, tmp_path: Path
) -> None:
    _, job_id, token = served_job(backend, tmp_path, "alice")
    send_over_http(backend.url, job_id, token, b"kept", name="kept.txt")
    auth = bearer(token)
    half = httpx.post(f"{backend.url}{uploads(job_id)}", json=declaration(CONTENT), headers=auth)
    httpx.put(
        f"{backend.url}{uploads(job_id)}/{half.json()['artifact_id']}",
        params={"offset": 0},
        content=CONTENT[:1000],
        headers=auth,
    )
    orphan = artifacts_dir(backend) / "0123456789abcdef0123456789abcdef"
    orphan.write_bytes(b"left by a deleted job")
    before = stored(backend)

    looked = backend.cli("artifacts", "gc", "--dry-run")
    after_dry_run = stored(backend)
    removed = backend.cli("artifacts", "gc")

    assert len(before) == 3
    assert "would remove 1 abandoned uploads and 1 orphaned objects" in looked
    assert after_dry_run == before
    assert "removed 1 abandoned uploads and 1 orphaned objects" in removed
    assert len(stored(backend)) == 1
    assert "kept.txt" in backend.cli("jobs", "artifacts", job_id)


def test_deleting_a_job_deletes_its_artifacts_but_a_running_one_is_refused(
    backend: BackendProcess, tmp_path: Path
) -> None:
    _, job_id, token = served_job(backend, tmp_path, "alice")
    send_over_http(backend.url, job_id, token, CONTENT)
    with pytest.raises(CliFailed) as running:
        backend.cli("jobs", "delete", job_id)
    httpx.patch(
        f"{backend.url}/api/training/local/{job_id}/status",
        json={"status": "completed"},
        headers=bearer(token),
    )

    backend.cli("jobs", "delete", job_id)

    assert "is running: cancel it first, then delete it" in running.value.stderr
    assert stored(backend) == []
    with pytest.raises(CliFailed) as gone:
        backend.cli("jobs", "artifacts", job_id)
    assert "No job with id" in gone.value.stderr
