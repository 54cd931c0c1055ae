"""The self-update of the real executable: version A, installed by ``install.sh``, is
offered version B by a real backend (``TRAINING_BACKEND_AGENT_VERSION``). B is the
session's build packed again with a bumped version and signed (``packaging/build
--repack --version --sign``), as a release would be.

- a job running when the offer comes is completed first; then A switches to B in the
  same process, and B's first successful poll confirms it;
- a B signed by a key A does not trust is refused, and A goes on;
- a B that cannot start its daemon is rolled back to A, which says why on the page.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.release.conftest import ROOT, Release
from tests.release.test_install import (
    builds,
    current_build,
    installed_binary,
    launcher,
    run,
    user_env,
)
from tests.support.backend import BackendProcess, start_backend
from tests.support.e2e import Owner, job_json, submit, wait_until
from training_agent import __version__

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

MAJOR, MINOR, PATCH = (int(part) for part in __version__.split("+")[0].split(".")[:3])
VERSION_B = f"{MAJOR}.{MINOR}.{PATCH + 1}"
SQLITE = "_internal/python3.11/lib-dynload"


def version_b(release: Release, tmp_path: Path, *, key: Path, broken: bool = False) -> Path:
    """Version B of the build, signed with ``key``; the archive (and its ``.sig``)."""
    source = release.unpacked
    if broken:  # its daemon cannot start: the sqlite3 module is gone (``version`` works)
        source = tmp_path / "broken"
        shutil.copytree(release.unpacked, source, symlinks=True)
        for module in (source / SQLITE).glob("_sqlite3*"):
            module.unlink()
    done = subprocess.run(
        [
            str(ROOT / "packaging" / "build"),
            "--repack",
            str(source),
            "--version",
            VERSION_B,
            "--sign",
            str(key),
            "--dist",
            str(tmp_path / "dist-b"),
            "--work",
            str(tmp_path / "work-b"),
        ],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return Path(done.stdout.strip().splitlines()[-1])


@contextmanager
def backend_offering(archive: Path, tmp_path: Path) -> Iterator[BackendProcess]:
    """A backend whose releases directory holds ``archive`` and which wants its version."""
    releases = tmp_path / "releases"
    command = [sys.executable, "-m", "training_backend.cli", "releases", "add"]
    added = run([*command, str(archive), "--releases-dir", str(releases)], dict(os.environ))
    assert added.returncode == 0, added.stderr
    settings = {
        "TRAINING_BACKEND_RELEASES_DIR": str(releases),
        "TRAINING_BACKEND_AGENT_VERSION": VERSION_B,
    }
    with start_backend(tmp_path / "backend", env=settings) as backend:
        yield backend


class Site:
    """The owner on the Training Agent page: a user with a password and a session."""

    def __init__(self, backend: BackendProcess, name: str) -> None:
        password = backend.cli("users", "create", name).splitlines()[1]
        self.http = httpx.Client(base_url=backend.url, timeout=30)
        self.http.post("/api/auth/login", json={"name": name, "password": password})
        created = self.http.post("/api/user/api-keys", json={"name": "box", "scopes": ["training"]})
        self.key: str = created.json()["apiKey"]["key"]

    def agent(self) -> dict[str, Any]:
        """The one agent of this user, as the page gets it."""
        listed = self.http.get("/api/training/agents").json()
        rows = listed["agents"] if isinstance(listed, dict) else listed
        return dict(rows[0]) if rows else {}

    def update(self) -> dict[str, Any] | None:
        info = (self.agent().get("metadata") or {}).get("info") or {}
        update = info.get("update")
        return dict(update) if isinstance(update, dict) else None


@contextmanager
def installed_agent(
    release: Release, tmp_path: Path, backend: BackendProcess, key: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Version A installed by ``install.sh --from`` the session's build, then started
    through the launcher (as a person or a service would); stopped at the end."""
    env = user_env(tmp_path, API_KEY=key, BACKEND_URL=backend.url)
    script = str(ROOT / "installer" / "install.sh")
    installed = run(["sh", script, "--from", str(release.archive.parent)], env)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    log = (tmp_path / "agent-output.log").open("wb")
    agent = subprocess.Popen(
        [str(launcher(tmp_path)), "start", "--allow-command-jobs"],
        env=user_env(
            tmp_path,
            API_KEY=key,
            BACKEND_URL=backend.url,
            TRAINING_AGENT_MIN_POLL_INTERVAL_SECONDS="0.2",
        ),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield agent
    finally:
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(timeout=60)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
        log.close()


def record(tmp_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp_path / "agent" / "state" / "update.json").read_text())
    return data


def output(tmp_path: Path) -> str:
    return (tmp_path / "agent-output.log").read_text(errors="replace")


def test_a_running_job_is_completed_then_the_agent_becomes_version_b_in_place(
    release: Release, tmp_path: Path
) -> None:
    if release.key is None:
        pytest.skip("the reused build has no release-test.pem beside it")
    archive = version_b(release, tmp_path, key=release.key)
    with backend_offering(archive, tmp_path) as backend:
        site = Site(backend, "uma")
        job = {"type": "command", "command": ["sh", "-c", "sleep 6; echo finished before"]}
        job_id = submit(backend, tmp_path, "uma", job)
        with installed_agent(release, tmp_path, backend, site.key) as agent:
            wait_until(lambda: site.agent().get("version") == VERSION_B, "version B polls", 300)
            state = job_json(backend, job_id)["job"]
            assert agent.poll() is None, output(tmp_path)  # the same process, re-executed
            status = json.loads((tmp_path / "agent" / "state" / "status.json").read_text())
            wait_until(lambda: record(tmp_path).get("trial") is None, "B confirmed", 60)

        assert state["status"] == "completed"
        assert "finished before" in Owner(backend, site.key).logs(job_id)
        assert status.get("pid") in (None, agent.pid)
        assert record(tmp_path)["attempts"][VERSION_B]["outcome"] == "confirmed"
        assert current_build(tmp_path).startswith(f"{VERSION_B}-")
        assert len(builds(tmp_path)) == 2  # A kept for a rollback
        shown = run([str(installed_binary(tmp_path)), "--version"], user_env(tmp_path))
        assert shown.stdout.strip() == f"training-agent {VERSION_B}"


def test_a_version_b_signed_by_an_untrusted_key_is_refused_and_a_goes_on(
    release: Release, tmp_path: Path
) -> None:
    if release.key is None:
        pytest.skip("the reused build has no release-test.pem beside it")
    stranger = tmp_path / "stranger.pem"
    subprocess.run(
        [sys.executable, str(ROOT / "packaging" / "sign.py"), "genkey", str(stranger)],
        check=True,
        capture_output=True,
    )
    archive = version_b(release, tmp_path, key=stranger)
    with backend_offering(archive, tmp_path) as backend:
        site = Site(backend, "vic")
        with installed_agent(release, tmp_path, backend, site.key) as agent:
            wait_until(lambda: (site.update() or {}).get("state") == "failed", "refusal", 180)
            update = site.update()
            assert agent.poll() is None
            assert site.agent()["version"] == __version__

    assert update is not None and update["version"] == VERSION_B
    assert update["reason"].startswith(f"refused {archive.name}: the signature does not vouch")
    assert builds(tmp_path) == [current_build(tmp_path)]  # nothing new installed
    assert f"update to training-agent {VERSION_B} failed" in output(tmp_path)


def test_a_version_b_that_cannot_start_is_rolled_back_and_a_says_why(
    release: Release, tmp_path: Path
) -> None:
    if release.key is None:
        pytest.skip("the reused build has no release-test.pem beside it")
    archive = version_b(release, tmp_path, key=release.key, broken=True)
    with backend_offering(archive, tmp_path) as backend:
        site = Site(backend, "wes")
        with installed_agent(release, tmp_path, backend, site.key) as agent:
            wait_until(
                lambda: (
                    record(tmp_path)["attempts"].get(VERSION_B, {}).get("outcome") == "failed"
                    if (tmp_path / "agent" / "state" / "update.json").exists()
                    else False
                ),
                "the rollback",
                300,
            )
            wait_until(lambda: (site.update() or {}).get("state") == "failed", "the page", 120)
            update = site.update()
            assert agent.poll() is None, output(tmp_path)
            assert site.agent()["version"] == __version__

    assert current_build(tmp_path).startswith(f"{__version__}-")
    assert update is not None and update["version"] == VERSION_B
    assert "_sqlite3" in update["reason"]
    assert record(tmp_path)["trial"] is None
