"""Smoke-test a built archive on the machine it was built for (the release workflow's check).

    python packaging/smoke_test.py dist/training-agent-0.2.0-linux-amd64.tar.gz

Unpacks the archive in a temp dir, checks ``training-agent version`` says frozen and the
expected version, then starts the reference backend from this checkout (the ``backend``
extra), submits one command job and runs the unpacked executable until that job is
completed. Exit 0 when all of it worked; otherwise the first failure is printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test suite's helpers start the real backend

from tests.support.backend import start_backend  # noqa: E402
from tests.support.e2e import job_json, make_user_and_key, submit  # noqa: E402


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


def run_one_job(executable: Path, work: Path) -> None:
    with start_backend(work / "backend") as backend:
        key = make_user_and_key(backend, "smoke")
        command = [sys.executable, "-c", "print('smoke ok')"]
        job_id = submit(backend, work, "smoke", {"type": "command", "command": command})
        env = {**os.environ, "API_KEY": key, "BACKEND_URL": backend.url}
        env["TRAINING_AGENT_HOME"] = str(work / "agent")
        agent = [str(executable), "start", "--max-jobs", "1", "--allow-command-jobs"]
        subprocess.run(agent, env=env, check=True, timeout=300)
        status = job_json(backend, job_id)["job"]["status"]
    assert status == "completed", status
    print(f"job {job_id} completed by the built executable")


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
