"""The self-update of the real executable: version A, installed by ``install.sh``, is
offered version B by a real backend (``TRAINING_BACKEND_AGENT_VERSION``). B is the
session's build packed again with a bumped version and signed (``packaging/build
--repack --version --sign``), as a release would be: once per test session; the other
B's are cheap variations of that archive (signed by another key; a copy whose daemon
cannot start, packed by the test at a low compression level).

- a job running when the offer comes is completed first; then A switches to B in the
  same process, and B's first successful poll confirms it;
- a B signed by a key A does not trust is refused, and A goes on;
- a B that cannot start its daemon is rolled back to A, which says why on the page and
  does not try B again (one attempt per version);
- a B that starts but whose polls never get through (a fault proxy refuses them) is
  rolled back when its trial ends (``TRAINING_AGENT_UPDATE_TRIAL_SECONDS``, lowered
  here as an owner may), and A runs again and polls.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
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
from tests.support.fault_proxy import start_fault_proxy
from training_agent import __version__

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

MAJOR, MINOR, PATCH = (int(part) for part in __version__.split("+")[0].split(".")[:3])
VERSION_B = f"{MAJOR}.{MINOR}.{PATCH + 1}"
SQLITE = "_internal/python3.11/lib-dynload"
TRIAL_S = 5  # B's window for its first poll (the setting's floor): B starts in about 1 s


@pytest.fixture(scope="session")
def version_b(release: Release, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Version B of the session's build, signed with the release key; the archive (its
    ``.sig`` beside it). Made once per session."""
    if release.key is None:
        pytest.skip("the reused build has no release-test.pem beside it")
    root = tmp_path_factory.mktemp("version-b")
    done = subprocess.run(
        [
            str(ROOT / "packaging" / "build"),
            "--repack",
            str(release.unpacked),
            "--version",
            VERSION_B,
            "--sign",
            str(release.key),
            "--dist",
            str(root / "dist"),
            "--work",
            str(root / "work"),
        ],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return Path(done.stdout.strip().splitlines()[-1])


def sign(archive: Path, key: Path) -> None:
    """Write ``archive.sig`` with ``key`` (``packaging/sign.py sign``)."""
    command = [sys.executable, str(ROOT / "packaging" / "sign.py"), "sign", str(key), str(archive)]
    subprocess.run(command, check=True, capture_output=True, timeout=60)


def signed_by_a_stranger(archive: Path, folder: Path) -> Path:
    """A copy of ``archive`` signed with a new key no build trusts."""
    folder.mkdir()
    copy = Path(shutil.copy2(archive, folder / archive.name))
    stranger = folder / "stranger.pem"
    command = [sys.executable, str(ROOT / "packaging" / "sign.py"), "genkey", str(stranger)]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    sign(copy, stranger)
    return copy


def broken_copy(archive: Path, folder: Path, key: Path) -> Path:
    """``archive`` without its sqlite3 module (``version`` works, the daemon cannot
    start), copied member by member into a quickly compressed archive signed with
    ``key``."""
    broken = folder / archive.name
    folder.mkdir()
    with (
        tarfile.open(archive) as source,
        tarfile.open(broken, "w:gz", compresslevel=1) as packed,
    ):
        for member in source:
            if member.name.split("/", 1)[-1].startswith(f"{SQLITE}/_sqlite3"):
                continue
            packed.addfile(member, source.extractfile(member) if member.isfile() else None)
    sign(broken, key)
    return broken


@contextmanager
def backend_offering(archive: Path, tmp_path: Path, name: str) -> Iterator[Site]:
    """A backend whose releases directory holds ``archive`` and which wants its version;
    the user ``name`` on its page."""
    releases = tmp_path / "releases"
    command = [sys.executable, "-m", "training_backend.cli", "releases", "add"]
    added = run([*command, str(archive), "--releases-dir", str(releases)], dict(os.environ))
    assert added.returncode == 0, added.stderr
    settings = {
        "TRAINING_BACKEND_RELEASES_DIR": str(releases),
        "TRAINING_BACKEND_AGENT_VERSION": VERSION_B,
        "TRAINING_BACKEND_POLL_INTERVAL_SECONDS": "1",
    }
    with start_backend(tmp_path / "backend", env=settings) as backend:
        site = Site(backend, name)
        try:
            yield site
        finally:
            site.http.close()


class Site:
    """The owner on the Training Agent page: a user with a password and a session."""

    def __init__(self, backend: BackendProcess, name: str) -> None:
        self.backend = backend
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
    release: Release, tmp_path: Path, backend_url: str, key: str, **settings: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Version A installed by ``install.sh --from`` the session's build, then started
    through the launcher (as a person or a service would) with ``settings`` in its
    environment; stopped at the end."""
    env = user_env(tmp_path, API_KEY=key, BACKEND_URL=backend_url)
    script = str(ROOT / "installer" / "install.sh")
    installed = run(["sh", script, "--from", str(release.archive.parent)], env)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    log = (tmp_path / "agent-output.log").open("wb")
    agent = subprocess.Popen(
        [str(launcher(tmp_path)), "start", "--allow-command-jobs"],
        env=user_env(
            tmp_path,
            API_KEY=key,
            BACKEND_URL=backend_url,
            TRAINING_AGENT_MIN_POLL_INTERVAL_SECONDS="0.2",
            **settings,
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
    release: Release, version_b: Path, tmp_path: Path
) -> None:
    finish = tmp_path / "finish"
    job = {
        "type": "command",
        "command": ["sh", "-c", f"while [ ! -e '{finish}' ]; do sleep 0.1; done; echo done in A"],
    }
    with backend_offering(version_b, tmp_path, "uma") as site:
        backend = site.backend
        job_id = submit(backend, tmp_path, "uma", job)
        with installed_agent(release, tmp_path, backend.url, site.key) as agent:
            waiting = "stopping for the update once 1 running job(s) ended"
            wait_until(lambda: waiting in output(tmp_path), "B verified while the job runs", 300)
            assert job_json(backend, job_id)["job"]["status"] == "running"
            assert current_build(tmp_path).startswith(f"{__version__}-")  # not switched yet
            finish.touch()
            wait_until(lambda: site.agent().get("version") == VERSION_B, "version B polls", 300)
            state = job_json(backend, job_id)["job"]
            assert agent.poll() is None, output(tmp_path)  # the same process, re-executed
            wait_until(lambda: record(tmp_path).get("trial") is None, "B confirmed", 60)
            owner = Owner(backend, site.key)
            logs = owner.logs(job_id)

        assert state["status"] == "completed"
        assert "done in A" in logs
        assert record(tmp_path)["attempts"][VERSION_B]["outcome"] == "confirmed"
        assert current_build(tmp_path).startswith(f"{VERSION_B}-")
        assert len(builds(tmp_path)) == 2  # A kept for a rollback
        shown = run([str(installed_binary(tmp_path)), "--version"], user_env(tmp_path))
        assert shown.stdout.strip() == f"training-agent {VERSION_B}"


def test_a_version_b_signed_by_an_untrusted_key_is_refused_and_a_goes_on(
    release: Release, version_b: Path, tmp_path: Path
) -> None:
    archive = signed_by_a_stranger(version_b, tmp_path / "stranger")
    with (
        backend_offering(archive, tmp_path, "vic") as site,
        installed_agent(release, tmp_path, site.backend.url, site.key) as agent,
    ):
        wait_until(lambda: (site.update() or {}).get("state") == "failed", "refusal", 180)
        update = site.update()
        assert agent.poll() is None
        assert site.agent()["version"] == __version__

    assert update is not None and update["version"] == VERSION_B
    assert update["reason"].startswith(f"refused {archive.name}: the signature does not vouch")
    assert builds(tmp_path) == [current_build(tmp_path)]  # nothing new installed
    assert f"update to training-agent {VERSION_B} failed" in output(tmp_path)


def test_a_version_b_that_cannot_start_is_rolled_back_and_a_says_why(
    release: Release, version_b: Path, tmp_path: Path
) -> None:
    assert release.key is not None
    archive = broken_copy(version_b, tmp_path / "broken", release.key)
    with (
        backend_offering(archive, tmp_path, "wes") as site,
        installed_agent(release, tmp_path, site.backend.url, site.key) as agent,
    ):
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
        polls = site.agent().get("last_poll_at")
        wait_until(lambda: site.agent().get("last_poll_at") != polls, "A polls again", 60)
        update = site.update()
        assert agent.poll() is None, output(tmp_path)
        assert site.agent()["version"] == __version__

    assert current_build(tmp_path).startswith(f"{__version__}-")
    assert update is not None and update["version"] == VERSION_B
    assert "_sqlite3" in update["reason"]
    assert record(tmp_path)["trial"] is None
    # one attempt: A, offered B again at each poll, never downloads or switches again
    assert output(tmp_path).count(f"switching to training-agent {VERSION_B}") == 1
    assert output(tmp_path).count(f"downloading training-agent-{VERSION_B}") == 1


def test_a_version_b_whose_polls_never_get_through_is_rolled_back_and_a_polls(
    release: Release, version_b: Path, tmp_path: Path
) -> None:
    refuse_b = {
        "rules": [
            {
                "paths": "^/api/training/agent/poll$",
                "header": ["X-Agent-Version", VERSION_B],
                "every": 1,
                "faults": [{"kind": "status", "status": 503, "retry_after": 1}],
            }
        ]
    }
    with (
        backend_offering(version_b, tmp_path, "xia") as site,
        start_fault_proxy(tmp_path / "proxy", site.backend.url, refuse_b) as proxy,
        installed_agent(
            release,
            tmp_path,
            proxy.url,
            site.key,
            TRAINING_AGENT_UPDATE_TRIAL_SECONDS=str(TRIAL_S),
        ) as agent,
    ):
        wait_until(lambda: attempt(tmp_path, VERSION_B).get("outcome") == "failed", "rollback", 180)
        polls = site.agent().get("last_poll_at")
        wait_until(lambda: site.agent().get("last_poll_at") != polls, "A polls again", 60)
        wait_until(lambda: (site.update() or {}).get("state") == "failed", "the page", 30)
        update, shown = site.update(), site.agent()["version"]
        assert agent.poll() is None, output(tmp_path)  # the same process, re-executed twice

    assert proxy.injected(), "B never polled: it did not start"
    assert shown == __version__ and current_build(tmp_path).startswith(f"{__version__}-")
    why = f"training-agent {VERSION_B} did not reach its first successful poll within {TRIAL_S} s"
    assert update == {"state": "failed", "version": VERSION_B, "reason": why}
    assert record(tmp_path)["trial"] is None
    assert output(tmp_path).count(f"switching to training-agent {VERSION_B}") == 1


def attempt(tmp_path: Path, version: str) -> dict[str, Any]:
    """What ``update.json`` says of ``version`` so far ({} before the file or the try)."""
    if not (tmp_path / "agent" / "state" / "update.json").exists():
        return {}
    return dict(record(tmp_path)["attempts"].get(version) or {})
