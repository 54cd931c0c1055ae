"""Zero-copy enrollment end to end: sign in, download with enrollment over real HTTP,
unpack, run the installer from the unpacked folder, and the agent runs a job; no key is
typed anywhere. Then every bad enrollment: one sentence, nothing stored.

The release archive is a small fake: its ``training-agent`` is a Python script that runs
the agent from this source tree, so the installer finds the enrollment file beside "the
executable" exactly as the built executable does.
"""

from __future__ import annotations

import hashlib
import io
import json
import stat
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.support.agent import agent_env, start_agent, wait_agent
from tests.support.backend import BackendProcess, start_backend
from tests.support.e2e import job_json, submit, wait_until

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
STEM = "training-agent-0.2.0-linux-amd64"
PASSWORD = "a long password"
INSTALL = ("install", "--service", "none", "--yes")
EXECUTABLE = b'''#!/usr/bin/env python3
"""Stands in for the built executable: the agent from the source tree."""
import sys

from training_agent.cli import main

sys.exit(main())
'''


def fake_release(releases: Path) -> None:
    """The archive and a SHA256SUMS listing it and the executable inside."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in (("training-agent", EXECUTABLE), ("install.sh", b"#!/bin/sh\n")):
            info = tarfile.TarInfo(f"{STEM}/{name}")
            info.size, info.mode = len(data), 0o755
            archive.addfile(info, io.BytesIO(data))
    content = buffer.getvalue()
    (releases / f"{STEM}.tar.gz").write_bytes(content)
    (releases / "SHA256SUMS").write_text(
        f"{hashlib.sha256(content).hexdigest()}  {STEM}.tar.gz\n"
        f"{hashlib.sha256(EXECUTABLE).hexdigest()}  {STEM}/training-agent\n"
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendProcess]:
    """One backend for the module, serving the fake release, with user ``ada``."""
    root = tmp_path_factory.mktemp("enrollment")
    releases = root / "releases"
    releases.mkdir()
    fake_release(releases)
    env = {
        "TRAINING_BACKEND_RELEASES_DIR": str(releases),
        "TRAINING_BACKEND_AGENT_VERSION": "0.2.0",
    }
    with start_backend(root / "backend", env=env) as backend:
        backend.cli("users", "create", "ada", "--password-stdin", input=PASSWORD + "\n")
        yield backend


@pytest.fixture
def page(served: BackendProcess) -> Iterator[httpx.Client]:
    """ada's browser: signed in, with the session cookie."""
    with httpx.Client(base_url=served.url, timeout=30) as client:
        login = client.post("/api/auth/login", json={"name": "ada", "password": PASSWORD})
        assert login.status_code == 200, login.text
        yield client


def download_and_unpack(page: httpx.Client, into: Path) -> Path:
    """Download with enrollment (streamed to disk), unpack with tar; the agent's folder."""
    into.mkdir(parents=True)
    archive = into / f"{STEM}.tar.gz"
    with page.stream("GET", "/api/workers/download/linux", params={"enroll": 1}) as response:
        assert response.status_code == 200
        with archive.open("wb") as handle:
            for chunk in response.iter_bytes():
                handle.write(chunk)
    subprocess.run(["tar", "-xzf", archive.name], cwd=into, check=True, timeout=60)
    return into / STEM


def installer_env(root: Path) -> dict[str, str]:
    """A fresh HOME and agent home; no key and no URL anywhere in the environment."""
    env = agent_env(root / "agent", backend_url="", api_key="")
    del env["API_KEY"], env["BACKEND_URL"]
    env["HOME"] = str(root / "home")
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    env["PYTHONPATH"] = str(REPO)
    return env


def install_command(folder: Path, *extra: str) -> list[str]:
    """The unpacked "executable" running ``install`` with no questions and no service."""
    return [sys.executable, str(folder / "training-agent"), *INSTALL, *extra]


def install(folder: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        install_command(folder, *extra),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def files_under(*roots: Path) -> list[Path]:
    return sorted(p for root in roots if root.exists() for p in root.rglob("*") if p.is_file())


def test_download_install_and_run_a_job_with_no_key_typed(
    served: BackendProcess, page: httpx.Client, tmp_path: Path
) -> None:
    folder = download_and_unpack(page, tmp_path / "downloads")
    enroll_file = folder / "training-agent.enroll.json"
    assert stat.S_IMODE(enroll_file.stat().st_mode) == 0o600
    assert json.loads(enroll_file.read_text())["backend_url"] == served.url
    executable = hashlib.sha256((folder / "training-agent").read_bytes()).hexdigest()
    assert f"{executable}  {STEM}/training-agent" in published_sums(served)
    env = installer_env(tmp_path)

    installed = install(folder, env)

    assert installed.returncode == 0, installed.stderr
    assert f"Enrolling this machine with {served.url}" in installed.stderr
    assert not enroll_file.exists()
    key = json.loads((tmp_path / "agent" / "config" / "credentials.json").read_text())
    [stored] = [value for value in _strings(key) if value.startswith("wak_")]
    assert stored not in installed.stdout + installed.stderr
    [agent] = page.get("/api/training/agents").json()["agents"]
    assert agent["status"] == "online"
    assert agent["agent_id"] == (tmp_path / "agent" / "state" / "agent_id").read_text().strip()
    [enrollment] = page.get("/api/workers/enrollments").json()["enrollments"]
    assert (enrollment["status"], enrollment["agent_id"]) == ("used", agent["agent_id"])

    job_id = submit(
        served,
        tmp_path,
        "ada",
        {"type": "command", "command": ["python3", "-c", "print('enrolled')"]},
    )
    proc = start_agent(env, "--max-jobs", "1", "--allow-command-jobs")
    code, output = wait_agent(proc)

    assert code == 0, output
    wait_until(lambda: job_json(served, job_id)["job"]["status"] == "completed", "job completed")


def published_sums(backend: BackendProcess) -> list[str]:
    """The lines of the releases directory's SHA256SUMS."""
    assert backend.env is not None
    sums = Path(backend.env["TRAINING_BACKEND_RELEASES_DIR"]) / "SHA256SUMS"
    return sums.read_text().splitlines()


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def new_token(page: httpx.Client) -> str:
    token: str = page.post("/api/workers/enrollments").json()["token"]
    return token


def agent_folder(root: Path, *, backend_url: str, token: str) -> Path:
    """An unpacked agent with an enrollment file (as the download makes it)."""
    folder = root / STEM
    folder.mkdir(parents=True)
    (folder / "training-agent").write_bytes(EXECUTABLE)
    enroll = {"backend_url": backend_url, "enrollment_token": token, "expires_at": "later"}
    (folder / "training-agent.enroll.json").write_text(json.dumps(enroll))
    return folder


def spend(backend: BackendProcess, token: str) -> None:
    body = {"token": token, "agent_id": "agent_earlier00001"}
    assert httpx.post(f"{backend.url}/api/training/agent/enroll", json=body).status_code == 201


def expire(backend: BackendProcess) -> None:
    engine = create_engine(backend.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE enrollment_tokens SET expires_at = '2000-01-01'"))
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("used", "refused the enrollment: This enrollment token was already used; download"),
        ("expired", "refused the enrollment: This enrollment token has expired; download"),
        ("forged", "refused the enrollment: This enrollment token is not known here; download"),
        ("malformed", "holds no valid enrollment token; download the agent again"),
        ("elsewhere", "refused the enrollment: This enrollment token is not known here; download"),
    ],
)
def test_a_bad_enrollment_is_one_sentence_and_stores_nothing(
    served: BackendProcess, page: httpx.Client, tmp_path: Path, case: str, message: str
) -> None:
    token, url = new_token(page), served.url
    if case == "used":
        spend(served, token)
    elif case == "expired":
        expire(served)
    elif case == "forged":
        token = "wae_" + "Z" * 32
    elif case == "malformed":
        token = "wae_123"
    folder = agent_folder(tmp_path / "download", backend_url=url, token=token)
    env = installer_env(tmp_path)

    if case == "elsewhere":  # the file edited to point at another (real) backend
        with start_backend(tmp_path / "other") as other:
            folder.joinpath("training-agent.enroll.json").write_text(
                json.dumps({"backend_url": other.url, "enrollment_token": token})
            )
            result = install(folder, env)
    else:
        result = install(folder, env)

    assert result.returncode != 0
    [error] = [line for line in result.stderr.splitlines() if not line.startswith("Enrolling ")]
    assert error.startswith("training-agent: ") and message in error, result.stderr
    assert token not in result.stderr or case == "malformed"
    assert files_under(tmp_path / "agent", tmp_path / "home") == []
    assert (folder / "training-agent.enroll.json").exists()


def test_two_installers_racing_for_one_token_exactly_one_wins(
    served: BackendProcess, page: httpx.Client, tmp_path: Path
) -> None:
    token = new_token(page)
    roots = [tmp_path / "first", tmp_path / "second"]
    folders = [
        agent_folder(root / "download", backend_url=served.url, token=token) for root in roots
    ]
    racers = [
        subprocess.Popen(
            [
                sys.executable,
                str(folder / "training-agent"),
                "install",
                "--service",
                "none",
                "--yes",
            ],
            env=installer_env(root),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for root, folder in zip(roots, folders, strict=True)
    ]
    results = [(racer.wait(timeout=60), racer.communicate()[1]) for racer in racers]

    codes = sorted(code for code, _ in results)
    assert codes[0] == 0 and codes[1] != 0, results
    [(winner, _)] = [
        (root, err) for root, (code, err) in zip(roots, results, strict=True) if code == 0
    ]
    [(loser, error)] = [
        (root, err) for root, (code, err) in zip(roots, results, strict=True) if code
    ]
    assert "This enrollment token was already used; download the agent again" in error
    assert files_under(loser / "agent", loser / "home") == []
    assert (winner / "agent" / "config" / "credentials.json").exists()


def test_a_key_from_the_environment_wins_over_the_enrollment_file(
    served: BackendProcess, page: httpx.Client, tmp_path: Path
) -> None:
    key = served.cli("keys", "create", "--user", "ada", "--scope", "training").strip()
    created = page.post("/api/workers/enrollments").json()
    folder = agent_folder(tmp_path / "download", backend_url=served.url, token=created["token"])
    env = installer_env(tmp_path) | {"API_KEY": key}

    result = install(folder, env)

    assert result.returncode == 0, result.stderr
    assert "Enrolling" not in result.stderr
    assert (folder / "training-agent.enroll.json").exists()  # untouched, token unspent
    listed = page.get("/api/workers/enrollments").json()["enrollments"]
    assert {e["id"]: e["status"] for e in listed}[created["enrollment"]["id"]] == "pending"


def test_a_forced_keyring_that_does_not_work_stops_before_the_token_is_spent(
    served: BackendProcess, page: httpx.Client, tmp_path: Path
) -> None:
    created = page.post("/api/workers/enrollments").json()
    folder = agent_folder(tmp_path / "download", backend_url=served.url, token=created["token"])

    result = install(folder, installer_env(tmp_path), "--credential-store", "keyring")

    assert result.returncode != 0
    assert "cannot use the OS keyring" in result.stderr and "was not used" in result.stderr
    listed = page.get("/api/workers/enrollments").json()["enrollments"]
    assert {e["id"]: e["status"] for e in listed}[created["enrollment"]["id"]] == "pending"
    assert files_under(tmp_path / "agent", tmp_path / "home") == []
