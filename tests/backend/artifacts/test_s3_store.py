"""The S3 store against a real S3-compatible server process: multipart uploads mapped
onto chunks, small chunks gathered until a part is 5 MiB, and garbage found and removed."""

from __future__ import annotations

import hashlib
import os

import httpx
import pytest
from fastapi import FastAPI

from tests.backend.artifacts.support import declare, put_chunk, upload_all
from tests.backend.support import Caller
from training_backend.db.models import TrainingJob
from training_backend.services.artifact_store import UploadState
from training_backend.services.artifact_store.s3 import MIN_PART_BYTES, S3Store

MIB = 1024 * 1024


def send(store: S3Store, key: str, content: bytes, chunk: int) -> UploadState:
    state: UploadState = {}
    for offset in range(0, len(content), chunk):
        data = content[offset : offset + chunk]
        last = offset + len(data) == len(content)
        state = store.write(key, state, offset=offset, data=data, last=last)
    store.finish(key, state)
    return state


def stored_names(store: S3Store) -> list[str]:
    listed = store.client.list_objects_v2(Bucket=store.bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def read_all(store: S3Store, key: str, size: int) -> bytes:
    return b"".join(store.read(key, start=0, end=size))


def test_full_chunks_become_one_part_each(s3_store: S3Store) -> None:
    content = os.urandom(2 * 8 * MIB + 1000)

    state = send(s3_store, "k1", content, 8 * MIB)

    assert (state["parts"], state["part_bytes"]) == (3, len(content))
    assert read_all(s3_store, "k1", len(content)) == content
    assert stored_names(s3_store) == ["artifacts/k1"]


def test_small_chunks_wait_in_a_tail_until_a_part_is_5_mib(s3_store: S3Store) -> None:
    content = os.urandom(12 * MIB + 5)

    state = send(s3_store, "k2", content, MIB)

    assert state["parts"] == 3  # 5 MiB, 5 MiB, and the last 2 MiB + 5 bytes
    assert state["part_bytes"] == len(content)
    assert MIN_PART_BYTES == 5 * MIB
    assert read_all(s3_store, "k2", len(content)) == content
    assert stored_names(s3_store) == ["artifacts/k2"]  # no tail left behind


def test_a_small_artifact_is_one_object_and_an_empty_one_exists(s3_store: S3Store) -> None:
    send(s3_store, "small", b"hello", MIB)
    s3_store.finish("empty", {})

    assert read_all(s3_store, "small", 5) == b"hello"
    assert read_all(s3_store, "empty", 0) == b""
    assert stored_names(s3_store) == ["artifacts/empty", "artifacts/small"]


def test_a_range_reads_only_its_bytes(s3_store: S3Store) -> None:
    content = os.urandom(3 * MIB)
    send(s3_store, "k3", content, 8 * MIB)
    assert b"".join(s3_store.read("k3", start=MIB, end=MIB + 10)) == content[MIB : MIB + 10]


def test_discard_removes_unfinished_parts_and_the_tail(s3_store: S3Store) -> None:
    state = s3_store.write("k4", {}, offset=0, data=os.urandom(6 * MIB), last=False)
    s3_store.write("k4", state, offset=6 * MIB, data=b"tail", last=False)
    assert sorted(s3_store.keys()) == ["k4"]

    s3_store.discard("k4")

    assert list(s3_store.keys()) == []
    uploads = s3_store.client.list_multipart_uploads(Bucket=s3_store.bucket)
    assert uploads.get("Uploads", []) == []


def test_finishing_twice_is_harmless(s3_store: S3Store) -> None:
    content = os.urandom(6 * MIB)
    state = send(s3_store, "k5", content, 5 * MIB)
    s3_store.finish("k5", state)
    assert read_all(s3_store, "k5", len(content)) == content


@pytest.mark.parametrize("chunk", [8 * MIB, 3 * MIB])
async def test_the_chunk_protocol_over_s3_stores_and_serves_the_exact_bytes(
    app: FastAPI,
    client: httpx.AsyncClient,
    caller: Caller,
    running: tuple[TrainingJob, str],
    s3_store: S3Store,
    chunk: int,
) -> None:
    app.state.artifact_store = s3_store
    job, token = running
    content = os.urandom(13 * MIB + 17)
    artifact_id = (await declare(client, job.id, token, content)).json()["artifact_id"]
    await put_chunk(client, job.id, token, artifact_id, 0, content[:chunk])
    app.state.upload_hashes.forget(artifact_id)  # verify by reading back from S3

    last = await upload_all(client, job.id, token, content, chunk=chunk)
    download = await client.get(
        f"/api/training/jobs/{job.id}/artifacts/{artifact_id}", headers=caller.headers(None)
    )

    assert last.json()["complete"] is True
    assert hashlib.sha256(download.content).hexdigest() == hashlib.sha256(content).hexdigest()
