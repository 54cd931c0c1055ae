"""``training-backend jobs submit --dataset FILE``, run as a real process: the file becomes
the job's dataset, which the served backend then hands to the agent that claimed the job."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.backend.conftest import fresh_database_url
from tests.support.backend import BackendProcess, CliFailed, start_backend

CONTENT = b'{"text": "hello"}\n' * 1000


@pytest.fixture
def backend(
    database_kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[BackendProcess]:
    """A served backend; its CLI runs (which inherit this environment) share its datasets."""
    monkeypatch.setenv("TRAINING_BACKEND_DATASETS_DIR", str(tmp_path / "datasets"))
    monkeypatch.setenv("TRAINING_BACKEND_MAX_DATASET_BYTES", str(len(CONTENT)))
    with (
        fresh_database_url(database_kind, tmp_path) as url,
        start_backend(tmp_path / "backend", database_url=url) as process,
    ):
        process.cli("users", "create", "alice")
        yield process


def job_file(tmp_path: Path, body: object) -> str:
    path = tmp_path / "job.json"
    path.write_text(json.dumps(body))
    return str(path)


def test_the_dataset_is_stored_linked_and_downloaded_by_the_agent(
    backend: BackendProcess, tmp_path: Path
) -> None:
    key = backend.cli("keys", "create", "--user", "alice").strip()
    dataset = tmp_path / "train.jsonl"
    dataset.write_bytes(CONTENT)
    job = job_file(tmp_path, {"config": {"type": "command", "command": ["true"]}})

    out = backend.cli("jobs", "submit", "--user", "alice", "--file", job, "--dataset", str(dataset))

    job_id = out.strip()
    assert out == f"{job_id}\n" and len(job_id) == 36  # still only the id
    headers = {"Authorization": f"Bearer {key}", "X-Agent-ID": "agent_cli_dataset01"}
    with httpx.Client(base_url=backend.url, timeout=30) as http:
        offered = http.get("/api/training/agent/poll", headers=headers).json()["job"]
        claimed = http.post(f"/api/training/agent/claim/{job_id}", headers=headers)
        token = claimed.json()["job_token"]
        download = http.get(
            f"/api/training/local/{job_id}/dataset", headers={"Authorization": f"Bearer {token}"}
        )
    sha256 = hashlib.sha256(CONTENT).hexdigest()
    assert offered["id"] == job_id
    assert offered["dataset"]["filename"] == "train.jsonl"
    assert offered["dataset"]["sha256"] == sha256
    assert download.status_code == 200
    assert download.content == CONTENT
    assert download.headers["x-checksum-sha256"] == sha256


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda path: None, "cannot be read (No such file or directory): give an existing file"),
        (lambda path: path.write_bytes(b""), "is empty: give a non-empty file"),
        (
            lambda path: path.write_bytes(CONTENT + b"x"),
            f"is {len(CONTENT) + 1} bytes, more than the backend accepts ({len(CONTENT)}): "
            "raise TRAINING_BACKEND_MAX_DATASET_BYTES or use a smaller file.",
        ),
        (lambda path: path.mkdir(), "is not a file: give a file"),
    ],
    ids=["missing", "empty", "too-big", "directory"],
)
def test_an_unusable_dataset_file_is_one_sentence_and_queues_nothing(
    backend: BackendProcess, tmp_path: Path, make: object, expected: str
) -> None:
    dataset = tmp_path / "train.jsonl"
    make(dataset)  # type: ignore[operator]
    job = job_file(tmp_path, {"config": {}})

    with pytest.raises(CliFailed) as failed:
        backend.cli("jobs", "submit", "--user", "alice", "--file", job, "--dataset", str(dataset))

    message = str(failed.value)
    assert f"training-backend: dataset {'' if 'not a file' in expected else 'file '}" in message
    assert expected in message
    assert list((tmp_path / "datasets").glob("*")) == []
    with httpx.Client(base_url=backend.url, timeout=30) as http:
        key = backend.cli("keys", "create", "--user", "alice").strip()
        headers = {"Authorization": f"Bearer {key}", "X-Agent-ID": "agent_cli_dataset02"}
        assert http.get("/api/training/agent/poll", headers=headers).json()["job"] is None


def test_a_dataset_id_in_the_file_and_a_dataset_file_conflict(
    backend: BackendProcess, tmp_path: Path
) -> None:
    dataset = tmp_path / "train.jsonl"
    dataset.write_bytes(CONTENT)
    job = job_file(tmp_path, {"config": {}, "dataset_id": "x"})
    with pytest.raises(CliFailed) as failed:
        backend.cli("jobs", "submit", "--user", "alice", "--file", job, "--dataset", str(dataset))
    assert "names a dataset_id and --dataset gives a file: use only one." in str(failed.value)


def test_requirements_come_from_the_file_and_the_flags(
    backend: BackendProcess, tmp_path: Path
) -> None:
    body = {"config": {}, "requirements": {"labels": ["a100"], "min_gpus": 1}}
    job = job_file(tmp_path, body)
    job_id = backend.cli(
        "jobs", "submit", "--user", "alice", "--file", job, "--label", "eu", "--min-gpus", "2"
    ).strip()
    shown = json.loads(backend.cli("jobs", "show", job_id, "--json"))["job"]
    assert shown["requirements"] == {"labels": ["eu"], "min_gpus": 2}  # a flag wins

    with pytest.raises(CliFailed) as refused:
        backend.cli("jobs", "submit", "--user", "alice", "--file", job, "--label", "Not A Slug")
    assert refused.value.returncode != 0
    assert "is not a short slug" in refused.value.stderr
    assert "\n" not in refused.value.stderr.strip()
