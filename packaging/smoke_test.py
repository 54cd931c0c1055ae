"""Smoke-test a built archive on the machine it was built for (the release workflow's check).

    python packaging/smoke_test.py dist/training-agent-0.2.0-linux-amd64.tar.gz

Unpacks the archive in a temp dir, checks ``training-agent version`` says frozen and the
expected version, then starts the reference backend from this checkout (the ``backend``
extra), submits one command job and runs the unpacked executable until that job is
completed. Exit 0 when all of it worked; otherwise the first failure is printed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

import httpx


def unpack(archive: Path, into: Path) -> Path:
    """The executable inside ``archive``'s top-level folder."""
    stem = archive.name.removesuffix(".tar.gz").removesuffix(".zip")
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as opened:
            opened.extractall(into)
        return into / stem / "training-agent.exe"
    with tarfile.open(archive) as opened:
        opened.extractall(into, filter="tar")
    return into / stem / "training-agent"


def check_version(executable: Path, version: str) -> None:
    shown = subprocess.run([str(executable), "version"], capture_output=True, text=True, check=True)
    print(shown.stdout, end="")
    lines = shown.stdout.splitlines()
    assert lines[0] == f"training-agent {version}", lines
    assert "frozen    yes" in shown.stdout, shown.stdout


def backend_cli(database: str, *args: str) -> str:
    command = [sys.executable, "-m", "training_backend.cli", *args, "--database-url", database]
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"the backend at {url} did not start")


def run_one_job(executable: Path, work: Path) -> None:
    database = f"sqlite:///{work / 'backend.sqlite3'}"
    backend_cli(database, "users", "create", "smoke", "--no-password")
    key = backend_cli(database, "keys", "create", "--user", "smoke").strip()
    spec = {"config": {"type": "command", "command": [sys.executable, "-c", "print('smoke ok')"]}}
    job_file = work / "job.json"
    job_file.write_text(json.dumps(spec))
    job_id = backend_cli(database, "jobs", "submit", "--user", "smoke", "--file", str(job_file))
    port = free_port()
    serve = [sys.executable, "-m", "training_backend.cli", "serve", "--port", str(port)]
    server = subprocess.Popen([*serve, "--database-url", database, "--log-level", "warning"])
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url)
        env = {**os.environ, "API_KEY": key, "BACKEND_URL": url}
        env["TRAINING_AGENT_HOME"] = str(work / "agent")
        agent = [str(executable), "start", "--max-jobs", "1", "--allow-command-jobs"]
        subprocess.run(agent, env=env, check=True, timeout=300)
    finally:
        server.terminate()
        server.wait(timeout=30)
    shown = json.loads(backend_cli(database, "jobs", "show", job_id.strip(), "--json"))
    assert shown["job"]["status"] == "completed", shown
    print(f"job {job_id.strip()} completed by the built executable")


def main() -> int:
    archive = Path(sys.argv[1]).resolve()
    version = archive.name.split("-")[2]
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        executable = unpack(archive, work)
        check_version(executable, version)
        run_one_job(executable, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
