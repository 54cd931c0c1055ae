"""The chunk protocol: each byte stored once at its offset, gaps refused, the whole
verified against its SHA-256 at the end, and ids that are not the job's refused."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session

from tests.backend.artifacts.support import (
    CHUNK,
    SpyStore,
    declare,
    put_chunk,
    upload_all,
    uploads,
)
from tests.backend.support import Caller, MakeRunningJob, bearer
from training_backend.db.models import Artifact, TrainingJob
from training_backend.services.artifact_store.errors import StoreFull

CONTENT = os.urandom(5 * CHUNK + 123)


async def test_the_poll_advertises_artifacts(client: httpx.AsyncClient, caller: Caller) -> None:
    answer = await client.get("/api/training/agent/poll", headers=caller.headers())
    assert "artifacts" in answer.json()["features"]


async def test_chunks_in_order_make_a_complete_verified_artifact(
    client: httpx.AsyncClient, running: tuple[TrainingJob, str], spy: SpyStore
) -> None:
    job, token = running
    declared = await declare(client, job.id, token, CONTENT)
    assert declared.status_code == 201
    assert declared.json() | {"artifact_id": "x"} == {
        "success": True,
        "control": None,
        "artifact_id": "x",
        "offset": 0,
        "complete": False,
        "max_chunk_bytes": 8 * 1024 * 1024,
    }

    last = await upload_all(client, job.id, token, CONTENT)

    assert last.status_code == 200
    assert (last.json()["offset"], last.json()["complete"]) == (len(CONTENT), True)
    assert sum(size for _, _, size in spy.writes) == len(CONTENT)
    listed = await client.get(f"/api/training/jobs/{job.id}/artifacts", headers=bearer(token))
    assert listed.status_code == 401  # a job token is not an owner's credential


async def test_chunks_are_received_into_one_reused_buffer_and_stored_exactly(
    client: httpx.AsyncClient, app: FastAPI, running: tuple[TrainingJob, str], spy: SpyStore
) -> None:
    job, token = running
    await declare(client, job.id, token, CONTENT)

    last = await upload_all(client, job.id, token, CONTENT)

    assert last.json()["complete"] is True
    assert app.state.chunk_buffers.idle == 1  # one buffer served every chunk
    key = spy.writes[0][0]
    stored = b"".join(spy.inner.read(key, start=0, end=len(CONTENT)))
    assert stored == CONTENT  # the short last chunk carried none of the one before


async def test_declaring_again_answers_the_same_upload_and_its_offset(
    client: httpx.AsyncClient, running: tuple[TrainingJob, str]
) -> None:
    job, token = running
    first = (await declare(client, job.id, token, CONTENT)).json()
    await put_chunk(client, job.id, token, first["artifact_id"], 0, CONTENT[:CHUNK])

    again = await declare(client, job.id, token, CONTENT)

    assert again.status_code == 200
    assert again.json()["artifact_id"] == first["artifact_id"]
    assert again.json()["offset"] == CHUNK


async def test_a_chunk_already_held_answers_success_without_writing(
    client: httpx.AsyncClient, running: tuple[TrainingJob, str], spy: SpyStore
) -> None:
    job, token = running
    artifact_id = (await declare(client, job.id, token, CONTENT)).json()["artifact_id"]
    await put_chunk(client, job.id, token, artifact_id, 0, CONTENT[:CHUNK])
    await put_chunk(client, job.id, token, artifact_id, CHUNK, CONTENT[CHUNK : 2 * CHUNK])
    writes = len(spy.writes)

    repeated = await put_chunk(client, job.id, token, artifact_id, 0, CONTENT[:CHUNK])

    assert repeated.status_code == 200
    assert repeated.json()["offset"] == 2 * CHUNK
    assert len(spy.writes) == writes


async def test_a_chunk_overlapping_the_end_stores_only_its_new_bytes(
    client: httpx.AsyncClient, running: tuple[TrainingJob, str], spy: SpyStore
) -> None:
    job, token = running
    artifact_id = (await declare(client, job.id, token, CONTENT)).json()["artifact_id"]
    await put_chunk(client, job.id, token, artifact_id, 0, CONTENT[:CHUNK])

    answer = await put_chunk(client, job.id, token, artifact_id, 100, CONTENT[100 : 100 + CHUNK])

    assert answer.json()["offset"] == CHUNK + 100
    assert spy.writes[-1][1:] == (CHUNK, 100)


async def test_a_gap_answers_409_with_the_expected_offset(
    client: httpx.AsyncClient, running: tuple[TrainingJob, str], spy: SpyStore
) -> None:
    job, token = running
    artifact_id = (await declare(client, job.id, token, CONTENT)).json()["artifact_id"]
    await put_chunk(client, job.id, token, artifact_id, 0, CONTENT[:CHUNK])

    answer = await put_chunk(client, job.id, token, artifact_id, 2 * CHUNK, CONTENT[:CHUNK])

    assert answer.status_code == 409
    assert answer.json()["code"] == "ARTIFACT_GAP"
    assert answer.json()["expected_offset"] == CHUNK
    assert "expected_offset" in answer.json()["error"]
    assert len(spy.writes) == 1


async def test_bytes_that_do_not_match_the_sha256_are_discarded_with_422(
    client: httpx.AsyncClient, running: tuple[TrainingJob, str], db: Session, spy: SpyStore
) -> None:
    job, token = running
    wrong = hashlib.sha256(b"something else").hexdigest()

    last = await upload_all(client, job.id, token, CONTENT, sha256=wrong)

    assert last.status_code == 422
    assert last.json()["code"] == "ARTIFACT_CORRUPT"
    assert "declare it again" in last.json()["error"]
    assert db.query(Artifact).count() == 0
    assert list(spy.keys()) == []
    again = await declare(client, job.id, token, CONTENT)
    assert (again.status_code, again.json()["offset"]) == (201, 0)


async def test_without_the_running_hash_the_stored_bytes_are_read_back_and_checked(
    client: httpx.AsyncClient, app: FastAPI, running: tuple[TrainingJob, str], spy: SpyStore
) -> None:
    job, token = running
    artifact_id = (await declare(client, job.id, token, CONTENT)).json()["artifact_id"]
    await put_chunk(client, job.id, token, artifact_id, 0, CONTENT[:CHUNK])
    app.state.upload_hashes.forget(artifact_id)  # as after a restart
    key = spy.writes[0][0]
    spy.inner.write(key, {}, offset=0, data=b"X" * 10, last=False)  # the disk lies

    last = await upload_all(client, job.id, token, CONTENT)

    assert (last.status_code, last.json()["code"]) == (422, "ARTIFACT_CORRUPT")


async def test_an_upload_whose_last_chunk_was_stored_before_a_crash_completes_when_declared(
    client: httpx.AsyncClient, running: tuple[TrainingJob, str], db: Session
) -> None:
    job, token = running
    await upload_all(client, job.id, token, CONTENT)
    db.query(Artifact).update({"complete": False, "completed_at": None})
    db.commit()

    again = await declare(client, job.id, token, CONTENT)

    assert (again.json()["offset"], again.json()["complete"]) == (len(CONTENT), True)


async def test_an_empty_artifact_is_complete_as_soon_as_it_is_declared(
    client: httpx.AsyncClient, running: tuple[TrainingJob, str]
) -> None:
    job, token = running
    answer = await declare(client, job.id, token, b"", name="empty.txt", kind="file")
    assert (answer.status_code, answer.json()["complete"]) == (201, True)


async def test_a_new_sha256_replaces_an_unfinished_upload_but_never_a_complete_one(
    client: httpx.AsyncClient, running: tuple[TrainingJob, str], db: Session
) -> None:
    job, token = running
    first = (await declare(client, job.id, token, CONTENT)).json()
    changed = CONTENT[::-1]

    replaced = await declare(client, job.id, token, changed)
    await upload_all(client, job.id, token, changed)
    refused = await declare(client, job.id, token, CONTENT)

    assert replaced.status_code == 201
    assert replaced.json()["artifact_id"] != first["artifact_id"]
    assert db.query(Artifact).count() == 1
    assert (refused.status_code, refused.json()["code"]) == (409, "ARTIFACT_EXISTS")


async def test_a_forged_or_foreign_artifact_id_is_404_and_a_wrong_token_401(
    client: httpx.AsyncClient, running: tuple[TrainingJob, str], make_running_job: MakeRunningJob
) -> None:
    job, token = running
    other, other_token = make_running_job()
    foreign = (await declare(client, other.id, other_token, CONTENT)).json()["artifact_id"]

    forged = await put_chunk(client, job.id, token, "0" * 36, 0, CONTENT[:CHUNK])
    borrowed = await put_chunk(client, job.id, token, foreign, 0, CONTENT[:CHUNK])
    stolen = await put_chunk(client, other.id, token, foreign, 0, CONTENT[:CHUNK])
    declared_elsewhere = await declare(client, other.id, token, CONTENT, name="x.bin")

    assert (forged.status_code, forged.json()["code"]) == (404, "ARTIFACT_NOT_FOUND")
    assert (borrowed.status_code, borrowed.json()["code"]) == (404, "ARTIFACT_NOT_FOUND")
    assert (stolen.status_code, stolen.json()["code"]) == (401, "INVALID_TOKEN")
    assert (declared_elsewhere.status_code, declared_elsewhere.json()["code"]) == (
        401,
        "INVALID_TOKEN",
    )


async def test_an_upload_past_the_users_quota_is_refused_with_a_sentence(
    client: httpx.AsyncClient,
    running: tuple[TrainingJob, str],
    configure: Callable[..., None],
) -> None:
    job, token = running
    configure(artifact_quota_gb=len(CONTENT) * 1.5 / 1000**3)
    await upload_all(client, job.id, token, CONTENT)

    answer = await declare(client, job.id, token, CONTENT, name="second.tar")

    assert answer.status_code == 413
    assert answer.json()["code"] == "ARTIFACT_QUOTA_EXCEEDED"
    assert "TRAINING_BACKEND_ARTIFACT_QUOTA_GB" in answer.json()["error"]


async def test_a_chunk_over_the_cap_is_refused_with_the_cap(
    client: httpx.AsyncClient, running: tuple[TrainingJob, str], configure: Callable[..., None]
) -> None:
    job, token = running
    configure(artifact_max_chunk_bytes=CHUNK)
    artifact_id = (await declare(client, job.id, token, CONTENT)).json()["artifact_id"]

    answer = await put_chunk(client, job.id, token, artifact_id, 0, CONTENT[: CHUNK + 1])

    assert (answer.status_code, answer.json()["code"]) == (413, "CHUNK_TOO_LARGE")
    assert f"at most {CHUNK} bytes" in answer.json()["error"]


async def test_a_chunk_past_the_declared_size_is_refused(
    client: httpx.AsyncClient, running: tuple[TrainingJob, str]
) -> None:
    job, token = running
    artifact_id = (await declare(client, job.id, token, b"abc", name="a.txt")).json()["artifact_id"]
    answer = await put_chunk(client, job.id, token, artifact_id, 0, b"abcd")
    assert (answer.status_code, answer.json()["code"]) == (400, "ARTIFACT_TOO_LONG")


async def test_a_full_store_answers_507_and_the_chunk_can_be_sent_again(
    client: httpx.AsyncClient, running: tuple[TrainingJob, str], spy: SpyStore
) -> None:
    job, token = running
    artifact_id = (await declare(client, job.id, token, CONTENT)).json()["artifact_id"]
    spy.fail_with = StoreFull("The backend's artifact storage is full")

    full = await put_chunk(client, job.id, token, artifact_id, 0, CONTENT[:CHUNK])
    spy.fail_with = None
    retried = await put_chunk(client, job.id, token, artifact_id, 0, CONTENT[:CHUNK])

    assert (full.status_code, full.json()["code"]) == (507, "INSUFFICIENT_STORAGE")
    assert full.json()["error"] == "The backend's artifact storage is full"
    assert retried.json()["offset"] == CHUNK


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "../etc/passwd"}, "name"),
        ({"name": ""}, "name"),
        ({"kind": "weights"}, "kind"),
        ({"size_bytes": -1}, "size_bytes"),
        ({"size_bytes": "12"}, "size_bytes"),
        ({"sha256": "abc"}, "sha256"),
    ],
)
async def test_a_bad_declaration_names_its_field(
    client: httpx.AsyncClient,
    running: tuple[TrainingJob, str],
    change: dict[str, object],
    field: str,
) -> None:
    job, token = running
    answer = await declare(client, job.id, token, CONTENT, **change)
    assert (answer.status_code, answer.json()["code"]) == (400, "INVALID_REQUEST")
    assert field in answer.json()["error"]


async def test_a_chunk_without_an_offset_is_a_bad_request(
    client: httpx.AsyncClient, running: tuple[TrainingJob, str]
) -> None:
    job, token = running
    artifact_id = (await declare(client, job.id, token, CONTENT)).json()["artifact_id"]
    answer = await client.put(
        f"{uploads(job.id)}/{artifact_id}", content=b"abc", headers=bearer(token)
    )
    assert (answer.status_code, answer.json()["code"]) == (400, "INVALID_REQUEST")
