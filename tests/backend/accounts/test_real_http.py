"""The whole account journey over real HTTP against a ``training-backend serve`` process:
create a user with the CLI, sign in, make a key, run the setup commands for real, poll,
see the agent online, revoke it."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.backend import BackendProcess, start_backend

CLI = (sys.executable, "-m", "training_backend.cli")
STEM = "training-agent-0.2.0-linux-amd64"
INSTALLER = """#!/bin/sh
# stands in for the real installer: records what the setup commands handed it
printf '%s\\n%s\\n' "$API_KEY" "$BACKEND_URL" > "$INSTALL_RECORD"
"""


def build_archive(releases: Path) -> str:
    """A real ``.tar.gz`` with a top-level folder and an ``install.sh``; returns its sha256."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = INSTALLER.encode()
        info = tarfile.TarInfo(f"{STEM}/install.sh")
        info.size, info.mode = len(data), 0o755
        archive.addfile(info, io.BytesIO(data))
    content = buffer.getvalue()
    (releases / f"{STEM}.tar.gz").write_bytes(content)
    sha256 = hashlib.sha256(content).hexdigest()
    (releases / "SHA256SUMS").write_text(f"{sha256}  {STEM}.tar.gz\n")
    return sha256


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BackendProcess]:
    releases = tmp_path / "releases"
    releases.mkdir()
    build_archive(releases)
    monkeypatch.setenv("TRAINING_BACKEND_RELEASES_DIR", str(releases))
    monkeypatch.setenv("TRAINING_BACKEND_AGENT_VERSION", "0.2.0")
    with start_backend(tmp_path / "backend") as process:
        yield process


def create_user(backend: BackendProcess, name: str, password: str) -> str:
    done = subprocess.run(
        [*CLI, "users", "create", name, "--password-stdin", "--database-url", backend.database_url],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stderr.strip() == "Password read from standard input."
    return done.stdout.strip()


def run_setup(commands: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    workdir.mkdir(exist_ok=True)
    record = workdir / "record.txt"
    return subprocess.run(
        ["bash", "-c", commands],
        cwd=workdir,
        env={"PATH": "/usr/bin:/bin", "INSTALL_RECORD": str(record)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_sign_in_key_setup_poll_and_revoke(served: BackendProcess, tmp_path: Path) -> None:
    create_user(served, "alice", "a long password")
    with httpx.Client(base_url=served.url, timeout=30) as page:
        wrong = page.post("/api/auth/login", json={"name": "alice", "password": "nope nope"})
        assert wrong.status_code == 401
        login = page.post("/api/auth/login", json={"name": "alice", "password": "a long password"})
        assert login.status_code == 200
        assert page.cookies.get("training_backend_session") == login.json()["token"]

        # from here on the page authenticates with its cookie only
        created = page.post("/api/user/api-keys", json={"name": "gpu box", "scopes": ["training"]})
        key = created.json()["apiKey"]["key"]
        setup = page.get("/api/workers/setup", params={"platform": "linux"}).json()

        commands = setup["commands"].replace(setup["api_key_placeholder"], key)
        installed = run_setup(commands, tmp_path / "install")
        assert installed.returncode == 0, installed.stderr
        assert (tmp_path / "install" / "record.txt").read_text().splitlines() == [
            key,
            served.url,
        ]

        agent = {
            "Authorization": f"Bearer {key}",
            "X-Agent-ID": "agent_realhttp0001",
            "X-Agent-Hostname": "gpu-box",
            "X-Agent-Platform": "linux",
            "X-Agent-Info": json.dumps({"cpu_count": 8, "gpus": []}),
        }
        assert httpx.get(f"{served.url}/api/training/agent/poll", headers=agent).status_code == 200
        [listed] = page.get("/api/training/agents").json()["agents"]
        assert (listed["agent_id"], listed["status"], listed["hostname"]) == (
            "agent_realhttp0001",
            "online",
            "gpu-box",
        )
        assert listed["metadata"]["info"] == {"cpu_count": 8, "gpus": []}

        assert page.delete("/api/training/agents/agent_realhttp0001").status_code == 200
        refused = httpx.get(f"{served.url}/api/training/agent/poll", headers=agent)
        assert refused.status_code == 403 and refused.json()["code"] == "AGENT_REVOKED"

        assert page.post("/api/auth/logout").status_code == 200
        assert page.get("/api/training/agents").status_code == 401


def test_setup_commands_refuse_a_tampered_download(served: BackendProcess, tmp_path: Path) -> None:
    create_user(served, "bob", "a long password")
    with httpx.Client(base_url=served.url, timeout=30) as page:
        page.post("/api/auth/login", json={"name": "bob", "password": "a long password"})
        setup = page.get("/api/workers/setup", params={"platform": "linux"}).json()
    (tmp_path / "releases" / f"{STEM}.tar.gz").write_bytes(b"not what was published")

    installed = run_setup(setup["commands"], tmp_path / "tampered")

    assert installed.returncode != 0
    assert "FAILED" in installed.stdout + installed.stderr
    assert not (tmp_path / "tampered" / "record.txt").exists()
    assert not (tmp_path / "tampered" / STEM).exists()
