"""Owners list their jobs' artifacts and download complete ones, whole or by range."""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta

import httpx
from sqlalchemy.orm import Session

from tests.backend.artifacts.support import CHUNK, declare, put_chunk, upload_all
from tests.backend.support import Caller, MakeKey, MakeRunningJob, reload
from training_backend.db.models import TrainingJob
from training_backend.db.types import utcnow

CONTENT = os.urandom(3 * CHUNK + 7)
SHA256 = hashlib.sha256(CONTENT).hexdigest()


def listing(job_id: str) -> str:
    return f"/api/training/jobs/{job_id}/artifacts"


async def uploaded(client: httpx.AsyncClient, job: TrainingJob, token: str) -> str:
    answer = await upload_all(client, job.id, token, CONTENT, name="adapter ü.tar")
    assert answer.json()["complete"], answer.text
    artifact_id: str = answer.json()["artifact_id"]
    return artifact_id


async def test_the_owner_lists_complete_and_unfinished_artifacts(
    client: httpx.AsyncClient, caller: Caller, running: tuple[TrainingJob, str]
) -> None:
    job, token = running
    await uploaded(client, job, token)
    unfinished = (await declare(client, job.id, token, b"x" * 10, name="model.bin")).json()

    answer = await client.get(listing(job.id), headers=caller.headers(None))

    assert answer.status_code == 200
    rows = answer.json()["artifacts"]
    assert [(row["name"], row["complete"]) for row in rows] == [
        ("adapter ü.tar", True),
        ("model.bin", False),
    ]
    assert rows[0]["sha256"] == SHA256
    assert rows[0]["size_bytes"] == rows[0]["received_bytes"] == len(CONTENT)
    assert rows[0]["kind"] == "adapter" and rows[0]["created_at"]
    assert rows[1]["id"] == unfinished["artifact_id"]
    download = await client.get(
        f"{listing(job.id)}/{unfinished['artifact_id']}", headers=caller.headers(None)
    )
    assert (download.status_code, download.json()["code"]) == (409, "ARTIFACT_INCOMPLETE")


async def test_a_download_has_length_etag_and_the_exact_bytes(
    client: httpx.AsyncClient, caller: Caller, running: tuple[TrainingJob, str]
) -> None:
    job, token = running
    artifact_id = await uploaded(client, job, token)

    answer = await client.get(f"{listing(job.id)}/{artifact_id}", headers=caller.headers(None))

    assert answer.status_code == 200
    assert answer.content == CONTENT
    assert answer.headers["content-length"] == str(len(CONTENT))
    assert answer.headers["etag"] == f'"{SHA256}"'
    assert answer.headers["accept-ranges"] == "bytes"
    assert "filename*=UTF-8''adapter%20%C3%BC.tar" in answer.headers["content-disposition"]


async def test_a_range_resumes_a_download_and_one_past_the_end_is_416(
    client: httpx.AsyncClient, caller: Caller, running: tuple[TrainingJob, str]
) -> None:
    job, token = running
    url = f"{listing(job.id)}/{await uploaded(client, job, token)}"
    headers = caller.headers(None)

    tail = await client.get(url, headers=headers | {"Range": "bytes=100-"})
    middle = await client.get(url, headers=headers | {"Range": "bytes=10-19"})
    suffix = await client.get(url, headers=headers | {"Range": "bytes=-5"})
    past = await client.get(url, headers=headers | {"Range": f"bytes={len(CONTENT)}-"})
    stale = await client.get(url, headers=headers | {"Range": "bytes=10-19", "If-Range": '"x"'})

    assert (tail.status_code, tail.content) == (206, CONTENT[100:])
    assert tail.headers["content-range"] == f"bytes 100-{len(CONTENT) - 1}/{len(CONTENT)}"
    assert tail.headers["content-length"] == str(len(CONTENT) - 100)
    assert (middle.status_code, middle.content) == (206, CONTENT[10:20])
    assert (suffix.status_code, suffix.content) == (206, CONTENT[-5:])
    assert past.status_code == 416
    assert past.headers["content-range"] == f"bytes */{len(CONTENT)}"
    assert (stale.status_code, stale.content) == (200, CONTENT)


async def test_another_users_job_and_artifact_are_404(
    client: httpx.AsyncClient,
    make_key: MakeKey,
    running: tuple[TrainingJob, str],
    make_running_job: MakeRunningJob,
    caller: Caller,
) -> None:
    job, token = running
    artifact_id = await uploaded(client, job, token)
    stranger = make_key()
    mine, _ = make_running_job()

    listed = await client.get(listing(job.id), headers=stranger.headers(None))
    fetched = await client.get(f"{listing(job.id)}/{artifact_id}", headers=stranger.headers(None))
    crossed = await client.get(f"{listing(mine.id)}/{artifact_id}", headers=caller.headers(None))

    assert (listed.status_code, listed.json()["code"]) == (404, "JOB_NOT_FOUND")
    assert (fetched.status_code, fetched.json()["code"]) == (404, "JOB_NOT_FOUND")
    assert (crossed.status_code, crossed.json()["code"]) == (404, "ARTIFACT_NOT_FOUND")


async def test_every_upload_call_renews_the_jobs_lease(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob, db: Session
) -> None:
    soon = utcnow() + timedelta(seconds=5)
    job, token = make_running_job(lease_expires_at=soon)

    declared = await declare(client, job.id, token, CONTENT)
    after_declare = reload(db, job).lease_expires_at
    reload(db, job).lease_expires_at = soon
    db.commit()
    await put_chunk(client, job.id, token, declared.json()["artifact_id"], 0, CONTENT[:CHUNK])
    after_chunk = reload(db, job).lease_expires_at

    assert after_declare is not None and after_declare > soon + timedelta(seconds=30)
    assert after_chunk is not None and after_chunk > soon + timedelta(seconds=30)
