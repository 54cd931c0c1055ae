"""Artifact uploads: chunked, resumable at the server's offset, verified, and settled
before the job's terminal status goes out."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.fake_artifacts import FakeArtifactServer, StoredArtifact
from training_agent.api import BackendClient
from training_agent.executor.outputs import PlannedUpload
from training_agent.jobs import JobStatus, OutputKind
from training_agent.reporting import archive
from training_agent.reporting import artifacts as artifacts_module
from training_agent.reporting.archive import Source
from training_agent.reporting.artifacts import ArtifactUploader
from training_agent.reporting.outbox import Outbox
from training_agent.reporting.uploader import Uploader
from training_agent.status.uploads import UploadBoard

CHUNK = 4096
FEATURES = frozenset({"artifacts", "job_details", "log_offsets"})


async def no_sleep(_delay: float) -> None:
    await asyncio.sleep(0)


@pytest.fixture
def server() -> FakeArtifactServer:
    return FakeArtifactServer()


@pytest.fixture
async def api(server: FakeArtifactServer) -> AsyncIterator[BackendClient]:
    client = server.client()
    yield client
    await client.aclose()


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    box = Outbox(tmp_path / "outbox.sqlite3")
    box.open_job("j1", "token-1")
    return box


def model_file(tmp_path: Path, size: int = 10 * CHUNK + 123) -> Path:
    path = tmp_path / "work" / "model.bin"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


def plan(outbox: Outbox, path: Path, *, index: int = 0, name: str = "model.bin") -> None:
    upload = PlannedUpload(index, path, name, OutputKind.MODEL, path.is_dir())
    outbox.artifacts.add("j1", [upload])


def artifacts(
    outbox: Outbox, api: BackendClient, board: UploadBoard | None = None
) -> ArtifactUploader:
    return ArtifactUploader(
        outbox=outbox,
        client=api,
        features=lambda: FEATURES,
        board=board,
        sleep=no_sleep,
        chunk_bytes=CHUNK,
        heartbeat_interval_s=None,
    )


def only(server: FakeArtifactServer) -> StoredArtifact:
    [artifact] = server.complete()
    return artifact


async def test_a_file_goes_up_in_chunks_and_the_status_carries_its_id(
    tmp_path: Path, outbox: Outbox, api: BackendClient, server: FakeArtifactServer
) -> None:
    path = model_file(tmp_path)
    plan(outbox, path)
    outputs = [{"path": str(path), "kind": "model"}]
    outbox.append_status("j1", JobStatus.COMPLETED, details={"exit_code": 0, "outputs": outputs})
    reports = Uploader(outbox=outbox, client=api, features=lambda: FEATURES, sleep=no_sleep)

    assert not await reports.drain_once()  # the terminal status waits for the upload
    assert server.statuses == []
    board = UploadBoard()
    assert await artifacts(outbox, api, board).drain_once()
    assert await reports.drain_once()

    artifact = only(server)
    assert bytes(artifact.data) == path.read_bytes()
    assert artifact.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (artifact.name, artifact.kind, artifact.job_id) == ("model.bin", "model", "j1")
    assert server.chunk_offsets() == list(range(0, path.stat().st_size, CHUNK))
    assert server.statuses[-1]["outputs"] == [
        {"path": str(path), "kind": "model", "name": "model.bin", "artifact_id": artifact.id}
    ]
    [view] = board.snapshot()
    assert (view["state"], view["sent_bytes"]) == ("complete", path.stat().st_size)


async def test_a_directory_goes_up_as_one_tar(
    tmp_path: Path, outbox: Outbox, api: BackendClient, server: FakeArtifactServer
) -> None:
    folder = tmp_path / "final_adapter"
    folder.mkdir()
    (folder / "adapter_model.safetensors").write_bytes(os.urandom(3 * CHUNK))
    (folder / "adapter_config.json").write_text('{"r": 8}')
    plan(outbox, folder, name="final_adapter.tar")

    assert await artifacts(outbox, api).drain_once()

    with tarfile.open(fileobj=io.BytesIO(bytes(only(server).data))) as archive:
        member = archive.extractfile("final_adapter/adapter_model.safetensors")
        assert member is not None
        assert member.read() == (folder / "adapter_model.safetensors").read_bytes()


async def test_an_upload_resumes_at_the_servers_offset(
    tmp_path: Path, outbox: Outbox, api: BackendClient, server: FakeArtifactServer
) -> None:
    path = model_file(tmp_path)
    size = path.stat().st_size
    plan(outbox, path)
    stopped = asyncio.Event()

    def stop_after_three(artifact: StoredArtifact, offset: int, _chunk: bytes) -> None:
        if offset == 3 * CHUNK:
            stopped.set()
            raise httpx.ConnectError("the agent is killed here")

    server.faults.append(stop_after_three)
    first = asyncio.create_task(artifacts(outbox, api).drain_once())
    await stopped.wait()
    first.cancel()  # the agent dies with the fourth chunk in flight
    with pytest.raises(asyncio.CancelledError):
        await first
    server.faults.clear()

    restarted = Outbox(outbox.path)
    assert await artifacts(restarted, api).drain_once()

    assert bytes(only(server).data) == path.read_bytes()
    assert server.received_bytes <= size + CHUNK
    assert server.chunk_offsets().count(0) == 1


async def test_a_lost_answer_resends_the_chunk_once_and_it_is_stored_once(
    tmp_path: Path, outbox: Outbox, api: BackendClient, server: FakeArtifactServer
) -> None:
    path = model_file(tmp_path)
    plan(outbox, path)
    lost: list[int] = []

    def store_then_drop(artifact: StoredArtifact, offset: int, chunk: bytes) -> None:
        if offset == 2 * CHUNK and not lost:
            lost.append(offset)
            artifact.data += chunk  # the server stored it; the answer never arrives
            raise httpx.ReadError("connection reset")

    server.faults.append(store_then_drop)

    assert await artifacts(outbox, api).drain_once()

    assert bytes(only(server).data) == path.read_bytes()
    assert server.chunk_offsets().count(2 * CHUNK) == 2
    assert server.received_bytes == path.stat().st_size + CHUNK


async def test_a_gap_moves_to_the_offset_the_server_expects(
    tmp_path: Path, outbox: Outbox, api: BackendClient, server: FakeArtifactServer
) -> None:
    path = model_file(tmp_path)
    plan(outbox, path)
    lost_once: list[bool] = []

    def lose_stored_bytes(artifact: StoredArtifact, offset: int, _chunk: bytes) -> None:
        if offset == 5 * CHUNK and not lost_once:
            lost_once.append(True)
            del artifact.data[2 * CHUNK :]  # the server lost what it had past chunk 2

    server.faults.append(lose_stored_bytes)

    assert await artifacts(outbox, api).drain_once()

    offsets = server.chunk_offsets()
    assert offsets[:7] == [0, CHUNK, 2 * CHUNK, 3 * CHUNK, 4 * CHUNK, 5 * CHUNK, 2 * CHUNK]
    assert bytes(only(server).data) == path.read_bytes()


async def test_a_full_backend_disk_is_waited_out(
    tmp_path: Path, outbox: Outbox, api: BackendClient, server: FakeArtifactServer
) -> None:
    path = model_file(tmp_path)
    plan(outbox, path)
    full = [3]

    def disk_full(_artifact: StoredArtifact, offset: int, _chunk: bytes) -> httpx.Response | None:
        if offset == CHUNK and full[0]:
            full[0] -= 1
            body = {"error": "the backend's disk is full; try again later", "code": "DISK_FULL"}
            return httpx.Response(507, json=body)
        return None

    server.faults.append(disk_full)

    assert await artifacts(outbox, api).drain_once()

    assert bytes(only(server).data) == path.read_bytes()
    assert server.chunk_offsets().count(CHUNK) == 4


async def test_a_corrupt_upload_starts_over_once(
    tmp_path: Path, outbox: Outbox, api: BackendClient, server: FakeArtifactServer
) -> None:
    path = model_file(tmp_path)
    plan(outbox, path)
    server.corrupt_next = 1

    assert await artifacts(outbox, api).drain_once()

    assert bytes(only(server).data) == path.read_bytes()
    assert server.chunk_offsets().count(0) == 2


async def test_corrupt_twice_fails_with_a_sentence_and_the_job_still_completes(
    tmp_path: Path, outbox: Outbox, api: BackendClient, server: FakeArtifactServer
) -> None:
    path = model_file(tmp_path)
    plan(outbox, path)
    outputs = [{"path": str(path), "kind": "model"}]
    outbox.append_status("j1", JobStatus.COMPLETED, details={"outputs": outputs})
    server.corrupt_next = 2
    board = UploadBoard()

    assert await artifacts(outbox, api, board).drain_once()
    assert await Uploader(
        outbox=outbox, client=api, features=lambda: FEATURES, sleep=no_sleep
    ).drain_once()

    assert server.complete() == []
    [status] = server.statuses
    assert status["status"] == "completed"
    assert "corrupt twice" in status["outputs"][0]["upload_error"]
    assert "artifact_id" not in status["outputs"][0]
    logs = [r for r in server.requests if r.url.path.endswith("/logs")]
    [line] = httpx.Response(200, content=logs[0].content).json()["logs"]
    assert (
        f"the output {path} was not uploaded" in line and f"stays on this machine at {path}" in line
    )
    assert board.snapshot()[0]["state"] == "failed"


async def test_a_file_that_changes_while_uploading_is_read_again_once(
    tmp_path: Path, outbox: Outbox, api: BackendClient, server: FakeArtifactServer
) -> None:
    path = model_file(tmp_path)
    plan(outbox, path)
    rewrites = [1]

    def rewrite(_artifact: StoredArtifact, offset: int, _chunk: bytes) -> None:
        if offset == 2 * CHUNK and rewrites[0]:
            rewrites[0] -= 1
            path.write_bytes(os.urandom(path.stat().st_size + 10))

    server.faults.append(rewrite)

    assert await artifacts(outbox, api).drain_once()

    [artifact] = server.complete()
    assert bytes(artifact.data) == path.read_bytes()


async def test_a_file_that_keeps_changing_fails_with_a_sentence(
    tmp_path: Path, outbox: Outbox, api: BackendClient, server: FakeArtifactServer
) -> None:
    path = model_file(tmp_path)
    plan(outbox, path)

    def rewrite(_artifact: StoredArtifact, offset: int, _chunk: bytes) -> None:
        if offset == 2 * CHUNK:
            path.write_bytes(os.urandom(path.stat().st_size + 1))

    server.faults.append(rewrite)

    assert await artifacts(outbox, api).drain_once()

    [row] = outbox.artifacts.of_job("j1")
    assert row.state.value == "failed" and row.error is not None
    assert "changed while it was uploading even after it was read a second time" in row.error
    assert server.complete() == []


async def test_a_refused_upload_is_given_up_at_once(
    tmp_path: Path, outbox: Outbox, api: BackendClient, server: FakeArtifactServer
) -> None:
    path = model_file(tmp_path)
    plan(outbox, path)

    def quota(_artifact: StoredArtifact, _offset: int, _chunk: bytes) -> httpx.Response:
        body = {"error": "your artifact quota (1 GB) is used up", "code": "QUOTA_EXCEEDED"}
        return httpx.Response(413, json=body)

    server.faults.append(quota)

    assert await artifacts(outbox, api).drain_once()

    [row] = outbox.artifacts.of_job("j1")
    assert row.error is not None and "quota (1 GB) is used up" in row.error
    assert server.chunk_offsets() == [0]


async def test_a_lost_lease_gives_up_every_upload_of_the_job(
    tmp_path: Path, outbox: Outbox, api: BackendClient, server: FakeArtifactServer
) -> None:
    first, second = model_file(tmp_path), tmp_path / "work" / "second.bin"
    second.write_bytes(b"x" * 100)
    plan(outbox, first)
    plan(outbox, second, index=1, name="second.bin")

    def lease(_artifact: StoredArtifact, _offset: int, _chunk: bytes) -> httpx.Response:
        return httpx.Response(409, json={"error": "lease expired", "code": "LEASE_EXPIRED"})

    server.faults.append(lease)

    assert await artifacts(outbox, api).drain_once()

    assert [row.state.value for row in outbox.artifacts.of_job("j1")] == ["failed", "failed"]
    assert server.chunk_offsets() == [0]


async def test_nothing_goes_out_before_the_features_are_known_or_without_the_feature(
    tmp_path: Path, outbox: Outbox, api: BackendClient, server: FakeArtifactServer
) -> None:
    path = model_file(tmp_path)
    plan(outbox, path)
    unknown = ArtifactUploader(outbox=outbox, client=api, features=lambda: None, sleep=no_sleep)
    assert not await unknown.drain_once()
    assert server.requests == []

    v1 = ArtifactUploader(
        outbox=outbox, client=api, features=lambda: frozenset({"job_details"}), sleep=no_sleep
    )
    assert await v1.drain_once()
    assert server.requests == []
    [row] = outbox.artifacts.of_job("j1")
    assert row.error == "the backend no longer takes artifacts"


async def test_chunks_stay_within_what_the_server_takes(
    tmp_path: Path, outbox: Outbox, api: BackendClient, server: FakeArtifactServer
) -> None:
    path = model_file(tmp_path, size=5000)
    plan(outbox, path)
    server.max_chunk_bytes = 1000

    assert await artifacts(outbox, api).drain_once()

    assert server.chunk_offsets() == [0, 1000, 2000, 3000, 4000]
    assert bytes(only(server).data) == path.read_bytes()


async def test_a_bug_in_one_upload_gives_it_up_and_the_next_goes_on(
    tmp_path: Path,
    outbox: Outbox,
    api: BackendClient,
    server: FakeArtifactServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = model_file(tmp_path), tmp_path / "work" / "second.bin"
    second.write_bytes(b"y" * 100)
    plan(outbox, first)
    plan(outbox, second, index=1, name="second.bin")
    real_open = archive.open_source

    def broken_once(path: Path, *, is_dir: bool) -> Source:
        if path == first:
            raise ValueError("a bug")
        return real_open(path, is_dir=is_dir)

    monkeypatch.setattr(artifacts_module, "open_source", broken_once)

    assert await artifacts(outbox, api).drain_once()

    rows = outbox.artifacts.of_job("j1")
    assert rows[0].error == "internal error in the agent: ValueError('a bug')"
    assert rows[1].state.value == "complete"
