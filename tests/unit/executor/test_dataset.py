"""The backend-held dataset of a job: the download call, the checksum, the cache."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.fake_backend import FakeBackend, job
from training_agent.api import BackendClient, PollResponse
from training_agent.dataset_cache import DatasetCache
from training_agent.errors import HttpStatusError, TransportError
from training_agent.executor.dataset import (
    DatasetFetcher,
    DatasetUnavailable,
    dataset_env,
    with_dataset,
)
from training_agent.jobs import ClaimedJob, JobDataset

TOKEN = "tok_dataset_0123456789"
ROUTE = "GET /api/training/local/job-1/dataset"
BODY = b'{"text": "hello"}\n' * 100_000  # 1.8 MB: several chunks
SHA = hashlib.sha256(BODY).hexdigest()


def claimed(sha256: str = SHA, size: int | None = len(BODY)) -> ClaimedJob:
    dataset = JobDataset("ds-1", "train.jsonl", sha256, size)
    return ClaimedJob(id="job-1", job_token=TOKEN, config={}, dataset=dataset)


def served(body: bytes = BODY) -> httpx.Response:
    return httpx.Response(200, content=body, headers={"X-Checksum-SHA256": SHA})


async def no_sleep(_seconds: float) -> None:
    return None


def fetcher(client: BackendClient, tmp_path: Path) -> DatasetFetcher:
    return DatasetFetcher(client=client, cache=DatasetCache(tmp_path / "cache"), sleep=no_sleep)


async def test_download_streams_the_body_to_a_new_file_with_the_job_token(
    backend: FakeBackend, client: BackendClient, tmp_path: Path
) -> None:
    backend.on(ROUTE, served())
    got = await client.download_dataset("job-1", TOKEN, tmp_path / "part")
    assert (got.size_bytes, got.sha256, got.announced_sha256) == (len(BODY), SHA, SHA)
    assert (tmp_path / "part").read_bytes() == BODY
    assert backend.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_a_refused_download_raises_and_leaves_no_file(
    backend: FakeBackend, client: BackendClient, tmp_path: Path
) -> None:
    backend.on(ROUTE, httpx.Response(404, json={"error": "gone", "code": "DATASET_NOT_FOUND"}))
    with pytest.raises(HttpStatusError) as caught:
        await client.download_dataset("job-1", TOKEN, tmp_path / "part")
    assert (caught.value.status, caught.value.code) == (404, "DATASET_NOT_FOUND")
    assert not (tmp_path / "part").exists()


class _CutStream(httpx.AsyncByteStream):
    """A body that breaks off after its first chunk, like a dropped connection."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield BODY[:1000]
        raise httpx.ReadError("connection reset")


async def test_a_broken_body_is_a_transport_error_and_leaves_no_file(
    backend: FakeBackend, client: BackendClient, tmp_path: Path
) -> None:
    backend.on(ROUTE, httpx.Response(200, stream=_CutStream()))
    with pytest.raises(TransportError):
        await client.download_dataset("job-1", TOKEN, tmp_path / "part")
    assert not (tmp_path / "part").exists()


def test_poll_and_claim_carry_the_dataset_and_ignore_an_unusable_one() -> None:
    dataset = {"id": "ds-1", "filename": "t.jsonl", "sha256": SHA.upper(), "size_bytes": 5}
    answer = PollResponse.model_validate({"job": job(dataset=dataset)})
    assert answer.job is not None and answer.job.dataset is not None
    assert (answer.job.dataset.sha256, answer.job.dataset.size_bytes) == (SHA, 5)
    broken = PollResponse.model_validate({"job": job(dataset={"id": "ds-1", "sha256": "x"})})
    assert broken.job is not None and broken.job.dataset is None


async def test_fetch_downloads_once_and_a_second_job_uses_the_cache(
    backend: FakeBackend, client: BackendClient, tmp_path: Path
) -> None:
    backend.on(ROUTE, served())
    datasets = fetcher(client, tmp_path)
    first = await datasets.fetch(claimed())
    second = await datasets.fetch(claimed())
    assert first == second and first.name == "train.jsonl" and first.read_bytes() == BODY
    assert len(backend.requests) == 1
    assert list((tmp_path / "cache" / ".partial").iterdir()) == []


async def test_a_checksum_mismatch_fails_with_one_sentence_and_caches_nothing(
    backend: FakeBackend, client: BackendClient, tmp_path: Path
) -> None:
    backend.on(ROUTE, served(BODY[:-1] + b"X"))
    with pytest.raises(DatasetUnavailable, match=r"is not the file the backend announced"):
        await fetcher(client, tmp_path).fetch(claimed())
    cache = tmp_path / "cache"
    assert [p.name for p in cache.iterdir()] == [".partial"]
    assert list((cache / ".partial").iterdir()) == []


async def test_a_missing_dataset_says_to_upload_it_again(
    backend: FakeBackend, client: BackendClient, tmp_path: Path
) -> None:
    backend.on(ROUTE, httpx.Response(404, json={"error": "gone", "code": "DATASET_NOT_FOUND"}))
    with pytest.raises(DatasetUnavailable) as caught:
        await fetcher(client, tmp_path).fetch(claimed())
    assert str(caught.value) == (
        "the backend no longer has the dataset train.jsonl of this job; "
        "upload the dataset again and resubmit the job"
    )
    assert len(backend.requests) == 1  # a 404 is not retried


async def test_a_failing_backend_is_retried_then_the_download_succeeds(
    backend: FakeBackend, client: BackendClient, tmp_path: Path
) -> None:
    backend.on(ROUTE, httpx.Response(503), httpx.Response(200, stream=_CutStream()), served())
    path = await fetcher(client, tmp_path).fetch(claimed())
    assert path.read_bytes() == BODY and len(backend.requests) == 3


def test_a_training_config_gets_the_local_path_and_other_jobs_the_environment(
    tmp_path: Path,
) -> None:
    local = tmp_path / "train.jsonl"
    config = {"model": {"name": "m"}, "dataset_path": "u/remote.jsonl"}
    assert with_dataset(config, claimed(), local)["dataset_path"] == str(local)
    column = ClaimedJob(id="j", job_token=TOKEN, config={}, dataset_path="/data/d.jsonl")
    assert with_dataset({"model": {"name": "m"}}, column, None)["dataset_path"] == "/data/d.jsonl"
    command = {"type": "command", "command": ["true"]}
    assert with_dataset(command, claimed(), local) is command
    env = dataset_env(local, DatasetCache(tmp_path / "c"))
    assert env == {
        "TRAINING_AGENT_DATASET": str(local),
        "TRAINING_AGENT_DATASET_CACHE": str(tmp_path / "c"),
    }


def test_the_cache_finds_the_same_content_under_another_name(tmp_path: Path) -> None:
    cache = DatasetCache(tmp_path)
    partial = cache.partial_path()
    partial.write_bytes(BODY)
    stored = cache.adopt(partial, SHA, "../a b.jsonl")
    assert stored == tmp_path / SHA / "a_b.jsonl"
    again = cache.find(SHA, "train.jsonl.gz", size_bytes=len(BODY))
    assert again == tmp_path / SHA / "train.jsonl.gz" and again.read_bytes() == BODY
    assert cache.find(SHA, "other.jsonl", size_bytes=1) is None  # damaged: not used
    cache.remember_url("https://data.example/x.jsonl", SHA, "a_b.jsonl")
    assert cache.find_url("https://data.example/x.jsonl") == stored
    assert cache.find_url("https://data.example/y.jsonl") is None


def modes(root: Path) -> dict[str, int]:
    found = {".": root.stat().st_mode & 0o777}
    found.update({str(p.relative_to(root)): p.stat().st_mode & 0o777 for p in root.rglob("*")})
    return found


async def test_the_cache_is_private_whatever_the_umask(
    backend: FakeBackend, client: BackendClient, tmp_path: Path
) -> None:
    # A dataset can be a company's data: 0700 folders and 0600 files, like the rest.
    backend.on(ROUTE, served())
    old = os.umask(0o022)
    try:
        path = await fetcher(client, tmp_path).fetch(claimed())
        cache = DatasetCache(tmp_path / "cache")
        cache.remember_url("https://data.example.com/train.jsonl", SHA, "train.jsonl")
        other = cache.find(SHA, "other.jsonl")  # the same content under a second name
    finally:
        os.umask(old)
    assert path.read_bytes() == BODY and other is not None
    found = modes(tmp_path / "cache")
    for name, mode in found.items():
        is_dir = (tmp_path / "cache" / name).is_dir()
        assert mode == (0o700 if is_dir else 0o600), (name, oct(mode))
    assert len(found) >= 6  # root, .partial, the entry folder, two names, urls, the index


async def test_a_cache_left_readable_is_narrowed_when_next_written(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    DatasetCache(root).partial_path()
    assert root.stat().st_mode & 0o777 == 0o700
