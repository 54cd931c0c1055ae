"""A job's outputs come back to the platform through the real agent and the real backend:
whole, verified, and resumed across a backend outage and an agent killed mid-upload."""

from __future__ import annotations

import hashlib
import io
import signal
import tarfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.agent import agent_env, start_agent, wait_agent
from tests.support.backend import BackendProcess
from tests.support.e2e import Owner, make_user_and_key, submit, wait_until
from tests.support.executor import command_job
from tests.support.upload_proxy import UploadProxy

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024
SIZE = 64 * MIB
CHUNK = 8 * MIB
UPLOAD_WAIT_S = 180.0  # a loaded 2-core machine hashes and sends 64 MiB slowly


def artifacts(owner: Owner, job_id: str) -> dict[str, dict[str, Any]]:
    listed = owner._get(f"/api/training/jobs/{job_id}/artifacts")["artifacts"]
    return {item["name"]: item for item in listed}


def download_sha256(owner: Owner, job_id: str, artifact_id: str) -> tuple[str, httpx.Headers]:
    digest = hashlib.sha256()
    url = f"{owner.backend.url}/api/training/jobs/{job_id}/artifacts/{artifact_id}"
    with httpx.stream("GET", url, headers=owner.headers, timeout=60) as response:
        response.raise_for_status()
        for piece in response.iter_bytes():
            digest.update(piece)
        return digest.hexdigest(), response.headers


def local_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while piece := file.read(MIB):
            digest.update(piece)
    return digest.hexdigest()


def job_with_outputs(backend: BackendProcess, tmp_path: Path, user: str) -> tuple[Owner, str]:
    owner = Owner(backend, make_user_and_key(backend, user))
    return owner, submit(backend, tmp_path, user, command_job("write-outputs", str(SIZE)))


def check_model_came_back(owner: Owner, job_id: str, home: Path) -> None:
    state = owner.wait_for(job_id, lambda s: s["status"] == "completed", "the job completed")
    stored = artifacts(owner, job_id)
    assert stored["weights"]["complete"] and stored["weights"]["size_bytes"] == SIZE
    expected = local_sha256(home / "data" / "jobs" / job_id / "model.bin")
    assert stored["weights"]["sha256"] == expected
    sha, headers = download_sha256(owner, job_id, stored["weights"]["id"])
    assert sha == expected
    assert headers["content-length"] == str(SIZE)
    assert state["status"] == "completed"


def test_a_64_mib_output_and_an_adapter_directory_come_back(
    backend: BackendProcess, tmp_path: Path
) -> None:
    owner, job_id = job_with_outputs(backend, tmp_path, "alice")
    home = tmp_path / "agent"
    env = agent_env(home, backend_url=backend.url, api_key=owner.key)
    env["TRAINING_AGENT_ALLOW_COMMAND_JOBS"] = "1"

    code, output = wait_agent(start_agent(env, "--max-jobs", "1"), timeout_s=UPLOAD_WAIT_S)

    assert code == 0, output
    check_model_came_back(owner, job_id, home)
    adapter = artifacts(owner, job_id)["final_adapter.tar"]
    assert adapter["kind"] == "adapter"
    url = f"{backend.url}/api/training/jobs/{job_id}/artifacts/{adapter['id']}"
    data = httpx.get(url, headers=owner.headers).content
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        config = archive.extractfile("final_adapter/adapter_config.json")
        assert config is not None and config.read() == b'{"r": 8}'
    assert "checkpoint-1" not in str(sorted(artifacts(owner, job_id)))  # "final" keeps it local
    logs = "\n".join(owner.logs(job_id))
    assert "/etc/hostname is not uploaded: it is outside the job's work directory" in logs


@pytest.mark.timeout(300)  # 20 s down on purpose, then the rest of a 64 MiB upload
def test_an_upload_resumes_after_the_backend_is_down_for_20_seconds(
    backend: BackendProcess, tmp_path: Path
) -> None:
    owner, job_id = job_with_outputs(backend, tmp_path, "bob")
    home = tmp_path / "agent"
    port = httpx.URL(backend.url).port
    assert port is not None
    with UploadProxy(port, rate_bps=16 * MIB) as proxy:
        env = agent_env(home, backend_url=proxy.url, api_key=owner.key)
        env["TRAINING_AGENT_ALLOW_COMMAND_JOBS"] = "1"
        agent = start_agent(env)
        try:
            wait_until(lambda: proxy.chunk_bytes >= 2 * CHUNK, "the upload is under way", 120)
            backend.stop_server()
            time.sleep(20)
            backend.start_again()
            wait_until(
                lambda: owner.state(job_id)["status"] == "completed",
                "the job completed after the outage",
                UPLOAD_WAIT_S,
            )
        finally:
            agent.send_signal(signal.SIGTERM)
            code, output = wait_agent(agent)
        assert code == 0, output
        check_model_came_back(owner, job_id, home)
        adapter_bytes = artifacts(owner, job_id)["final_adapter.tar"]["size_bytes"]
        assert proxy.chunk_bytes <= SIZE + adapter_bytes + CHUNK
        assert proxy.errors == []


def test_an_agent_killed_mid_upload_resumes_and_sends_at_most_one_chunk_again(
    backend: BackendProcess, tmp_path: Path
) -> None:
    owner, job_id = job_with_outputs(backend, tmp_path, "carol")
    home = tmp_path / "agent"
    port = httpx.URL(backend.url).port
    assert port is not None
    with UploadProxy(port, rate_bps=16 * MIB) as proxy:
        env = agent_env(home, backend_url=proxy.url, api_key=owner.key)
        env["TRAINING_AGENT_ALLOW_COMMAND_JOBS"] = "1"
        first = start_agent(env)
        wait_until(lambda: proxy.chunk_bytes >= 3 * CHUNK + MIB, "the upload is under way", 120)
        first.kill()  # SIGKILL, a chunk in flight
        wait_agent(first)
        assert owner.state(job_id)["status"] == "running"

        second = start_agent(env)
        try:
            wait_until(
                lambda: owner.state(job_id)["status"] == "completed",
                "the job completed after the restart",
                UPLOAD_WAIT_S,
            )
        finally:
            second.send_signal(signal.SIGTERM)
            code, output = wait_agent(second)
        assert code == 0, output
        check_model_came_back(owner, job_id, home)
        adapter_bytes = artifacts(owner, job_id)["final_adapter.tar"]["size_bytes"]
        assert proxy.chunk_bytes <= SIZE + adapter_bytes + CHUNK
        resent = [chunk for chunk in set(proxy.chunks) if proxy.chunks.count(chunk) > 1]
        assert len(resent) <= 1, proxy.chunks  # only the chunk in flight at the kill
        assert proxy.errors == []
