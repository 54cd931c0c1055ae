"""Datasets held by the backend: uploaded as the body, linked to a job, offered in the
poll and claim, and streamed to the job's agent with its checksum."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.backend.support import Caller, MakeKey, MakeRunningJob, bearer
from training_backend.services.datasets import clean_filename, datasets_dir
from training_backend.settings import BackendSettings

DATASETS = "/api/training/datasets"
CONTENT = b'{"text": "hello"}\n' * 1000


async def upload(
    client: httpx.AsyncClient, caller: Caller, content: bytes = CONTENT, name: str = "train.jsonl"
) -> httpx.Response:
    return await client.post(
        DATASETS, content=content, params={"filename": name}, headers=caller.headers(None)
    )


async def test_an_upload_is_stored_under_a_name_of_the_backends_choosing(
    client: httpx.AsyncClient, caller: Caller, settings: BackendSettings
) -> None:
    answer = await upload(client, caller, name="../../etc/passwd")

    assert answer.status_code == 201
    dataset = answer.json()["dataset"]
    assert dataset["filename"] == "passwd"
    assert dataset["sha256"] == hashlib.sha256(CONTENT).hexdigest()
    assert dataset["size_bytes"] == len(CONTENT)
    stored = [path for path in datasets_dir(settings).iterdir()]
    assert len(stored) == 1
    assert stored[0].name.endswith(".bin") and "passwd" not in stored[0].name
    assert stored[0].read_bytes() == CONTENT


async def test_a_job_with_a_dataset_is_offered_with_it_and_its_agent_downloads_it(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    dataset = (await upload(client, caller)).json()["dataset"]
    submitted = await client.post(
        "/api/training/jobs",
        json={"config": {}, "dataset_id": dataset["id"]},
        headers=caller.headers(None),
    )
    job_id = submitted.json()["job"]["id"]
    polled = await client.get("/api/training/agent/poll", headers=caller.headers())
    claimed = await client.post(f"/api/training/agent/claim/{job_id}", headers=caller.headers())
    token = claimed.json()["job_token"]
    download = await client.get(f"/api/training/local/{job_id}/dataset", headers=bearer(token))

    assert polled.json()["job"]["dataset"] == dataset
    assert claimed.json()["job"]["dataset"] == dataset
    assert download.status_code == 200
    assert download.content == CONTENT
    assert download.headers["content-length"] == str(len(CONTENT))
    assert download.headers["x-checksum-sha256"] == dataset["sha256"]
    assert "train.jsonl" in download.headers["content-disposition"]


async def test_a_job_without_a_dataset_answers_404(
    client: httpx.AsyncClient, make_running_job: MakeRunningJob
) -> None:
    job, token = make_running_job()
    answer = await client.get(f"/api/training/local/{job.id}/dataset", headers=bearer(token))
    assert (answer.status_code, answer.json()["code"]) == (404, "DATASET_NOT_FOUND")


async def test_another_users_dataset_cannot_be_linked(
    client: httpx.AsyncClient, caller: Caller, make_key: MakeKey
) -> None:
    dataset = (await upload(client, caller)).json()["dataset"]
    other = make_key()
    answer = await client.post(
        "/api/training/jobs",
        json={"config": {}, "dataset_id": dataset["id"]},
        headers=other.headers(None),
    )
    assert (answer.status_code, answer.json()["code"]) == (404, "DATASET_NOT_FOUND")


async def test_the_size_limit_is_enforced(
    app: FastAPI, client: httpx.AsyncClient, caller: Caller, settings: BackendSettings
) -> None:
    app.state.settings = settings.model_copy(update={"max_dataset_bytes": 1000})
    declared = await upload(client, caller, content=b"x" * 1001)

    async def chunks() -> object:
        for _ in range(3):
            yield b"y" * 600

    streamed = await client.post(DATASETS, content=chunks(), headers=caller.headers(None))  # type: ignore[arg-type]
    assert (declared.status_code, declared.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")
    assert (streamed.status_code, streamed.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")
    assert [p for p in datasets_dir(settings).iterdir()] == []


@pytest.mark.parametrize(
    ("headers", "status"),
    [({"Content-Type": "multipart/form-data; boundary=x"}, 415), ({}, 400)],
)
async def test_empty_or_multipart_uploads_are_refused(
    client: httpx.AsyncClient, caller: Caller, headers: dict[str, str], status: int
) -> None:
    answer = await client.post(
        DATASETS, content=b"" if status == 400 else b"--x--", headers=caller.headers(None) | headers
    )
    assert answer.status_code == status
    assert set(answer.json()) >= {"error", "code"}


async def test_an_upload_needs_credentials(client: httpx.AsyncClient) -> None:
    assert (await client.post(DATASETS, content=CONTENT)).status_code == 401


def test_filenames_are_cleaned() -> None:
    assert clean_filename("C:\\data\\train.jsonl") == "train.jsonl"
    assert clean_filename("a\x00b\nc.csv") == "abc.csv"
    assert clean_filename("..") == "dataset"
    assert clean_filename(None) == "dataset"
    assert len(clean_filename("x" * 1000)) == 255


def test_datasets_live_beside_the_sqlite_file_by_default(tmp_path: Path) -> None:
    settings = BackendSettings(database_url=f"sqlite:///{tmp_path / 'db' / 'b.sqlite3'}")
    assert datasets_dir(settings) == (tmp_path / "db" / "datasets").resolve()
    chosen = BackendSettings(database_url="sqlite://", datasets_dir=tmp_path / "elsewhere")
    assert datasets_dir(chosen) == tmp_path / "elsewhere"
