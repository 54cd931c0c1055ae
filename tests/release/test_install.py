"""The built executable, not the source tree, against a real backend: installed by the
platform's own setup commands or by ``install.sh --from``, in a throwaway HOME; it claims
a command job and completes it; a tampered archive is refused; a too-old agent stops."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.release.conftest import ROOT, Release
from tests.support.backend import BackendProcess, start_backend
from tests.support.e2e import Owner, job_json, make_user_and_key, submit
from training_agent import __version__
from training_agent.commands.version import current_arch

# The first test to run also waits for the session's build (PyInstaller: a minute or two
# on a loaded machine), which counts toward its timeout.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

COMMAND_JOB = {
    "type": "command",
    "command": ["sh", "-c", 'echo "frozen agent ran $TRAINING_AGENT_JOB_ID"'],
}


def user_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A person's shell in a throwaway HOME: no keyring (the key goes to the 0600 file)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "TRAINING_AGENT_HOME": str(tmp_path / "agent"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "TRAINING_AGENT_SERVICE": "none",
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        **extra,
    }


def run(
    command: list[str], env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def install_dir(tmp_path: Path) -> Path:
    return tmp_path / "home" / ".local" / "share" / "training-agent" / "bin"


def installed_binary(tmp_path: Path) -> Path:
    """The install directory's stable link to the current build's executable."""
    return install_dir(tmp_path) / "training-agent"


def builds(tmp_path: Path) -> list[str]:
    """The build folders in the install directory, by name."""
    return sorted(path.name for path in (install_dir(tmp_path) / "versions").iterdir())


def current_build(tmp_path: Path) -> str:
    """The build folder the stable link points at."""
    return installed_binary(tmp_path).resolve().parent.name


def launcher(tmp_path: Path) -> Path:
    return tmp_path / "home" / ".local" / "bin" / "training-agent"


def add_release(release: Release, releases_dir: Path) -> None:
    command = [sys.executable, "-m", "training_backend.cli", "releases", "add"]
    added = run(
        [*command, str(release.archive), "--releases-dir", str(releases_dir)], dict(os.environ)
    )
    assert added.returncode == 0, added.stderr


def setup_commands(backend: BackendProcess, name: str) -> tuple[str, str]:
    """The install commands the Training Agent page shows a new user, with the key that
    user made on the page put in; and that key."""
    password = backend.cli("users", "create", name).splitlines()[1]
    with httpx.Client(base_url=backend.url, timeout=30) as page:
        page.post("/api/auth/login", json={"name": name, "password": password}).raise_for_status()
        created = page.post("/api/user/api-keys", json={"name": "gpu box", "scopes": ["training"]})
        key: str = created.json()["apiKey"]["key"]
        params = {"platform": "linux", "arch": current_arch()}
        setup = page.get("/api/workers/setup", params=params).json()
    assert setup["available"], setup
    return setup["commands"].replace(setup["api_key_placeholder"], key), key


def test_the_setup_commands_install_the_executable_which_completes_a_command_job(
    release: Release, tmp_path: Path
) -> None:
    releases = tmp_path / "releases"
    add_release(release, releases)
    settings = {"TRAINING_BACKEND_RELEASES_DIR": str(releases)}
    with start_backend(tmp_path / "backend", env=settings) as backend:
        commands, key = setup_commands(backend, "ada")
        workdir = tmp_path / "downloads"
        workdir.mkdir()

        installed = run(["bash", "-c", commands], user_env(tmp_path), cwd=workdir)

        assert installed.returncode == 0, installed.stdout + installed.stderr
        assert key not in installed.stdout + installed.stderr
        assert os.readlink(launcher(tmp_path)) == str(installed_binary(tmp_path))
        assert installed_binary(tmp_path).is_symlink()
        assert builds(tmp_path) == [current_build(tmp_path)]
        assert current_build(tmp_path).startswith(f"{__version__}-")
        job_id, agent = complete_a_command_job(backend, tmp_path, "ada")

        assert f"frozen agent ran {job_id}" in Owner(backend, key).logs(job_id)
        assert agent["version"] == __version__


def complete_a_command_job(
    backend: BackendProcess, tmp_path: Path, user: str
) -> tuple[str, dict[str, str]]:
    """``user`` submits a command job; the installed launcher runs one job and exits; the
    job completed. The job id and the user's agent row."""
    job_id = submit(backend, tmp_path, user, COMMAND_JOB)
    started = run(
        [str(launcher(tmp_path)), "start", "--max-jobs", "1", "--allow-command-jobs"],
        user_env(tmp_path, TRAINING_AGENT_MIN_POLL_INTERVAL_SECONDS="0.2"),
    )
    assert started.returncode == 0, started.stdout + started.stderr
    assert job_json(backend, job_id)["job"]["status"] == "completed"
    [agent] = [row for row in _agents(backend) if row["user"] == user]
    return job_id, agent


def _agents(backend: BackendProcess) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = json.loads(backend.cli("agents", "list", "--json"))
    return rows


def test_install_sh_checks_sha256sums_refuses_a_tampered_archive_and_upgrades_in_place(
    release: Release, backend: BackendProcess, tmp_path: Path
) -> None:
    key = make_user_and_key(backend, "ines")
    good, bad = tmp_path / "good", tmp_path / "bad"
    for folder in (good, bad):
        folder.mkdir()
        shutil.copy(release.archive, folder)
        shutil.copy(release.sums, folder)
    tampered = bytearray((bad / release.archive.name).read_bytes())
    tampered[len(tampered) // 2] ^= 0xFF
    (bad / release.archive.name).write_bytes(bytes(tampered))
    script = str(ROOT / "installer" / "install.sh")
    env = user_env(tmp_path, API_KEY=key, BACKEND_URL=backend.url)

    refused = run(["sh", script, "--from", str(bad)], env)

    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        f"training-agent installer: the checksum of {release.archive.name} does not match "
        "SHA256SUMS (a damaged or tampered download); nothing was installed: download it again"
    )
    assert not (tmp_path / "home").exists() and not (tmp_path / "agent").exists()

    # an install of the one-file days: the executable itself where the link goes now
    install_dir(tmp_path).mkdir(parents=True)
    installed_binary(tmp_path).write_text("#!/bin/sh\necho an old one-file build\n")
    first = run(["sh", script, "--from", str(good)], env)
    assert first.returncode == 0, first.stderr
    assert f"Checked {release.archive.name} against SHA256SUMS." in first.stderr
    agent_id = (tmp_path / "agent" / "state" / "agent_id").read_text()
    (tmp_path / "agent" / "state" / "mine").write_text("kept")
    original = current_build(tmp_path)

    upgrade_env = {k: v for k, v in env.items() if k not in ("API_KEY", "BACKEND_URL")}
    again = run(["sh", script, "--from", str(good), "--version", __version__], upgrade_env)

    assert again.returncode == 0, again.stderr
    assert "Upgraded; kept the settings" in again.stderr
    assert (tmp_path / "agent" / "state" / "agent_id").read_text() == agent_id
    assert (tmp_path / "agent" / "state" / "mine").read_text() == "kept"
    # a new folder, then the link renamed over; the folder a running agent uses stays
    upgraded = current_build(tmp_path)
    assert upgraded != original and builds(tmp_path) == sorted([original, upgraded])
    third = run(["sh", script, "--from", str(good)], upgrade_env)
    assert third.returncode == 0, third.stderr
    assert builds(tmp_path) == sorted([upgraded, current_build(tmp_path)])
    shown = run([str(launcher(tmp_path)), "version"], env)
    assert "frozen    yes (one-folder executable)" in shown.stdout


def test_a_too_old_executable_stops_with_the_download_url(release: Release, tmp_path: Path) -> None:
    settings = {"TRAINING_BACKEND_MIN_AGENT_VERSION": "99.0.0"}
    with start_backend(tmp_path / "backend", env=settings) as backend:
        key = make_user_and_key(backend, "old")
        env = user_env(tmp_path, API_KEY=key, BACKEND_URL=backend.url)

        installed = run([str(release.executable), "install", "--yes", "--service", "none"], env)
        wrote = (tmp_path / "agent").exists() or (tmp_path / "home").exists()
        started = run([str(release.executable), "start"], env)

    sentence = (
        f"training-agent: the backend needs a newer training-agent (training-agent "
        f"{__version__} is older than 99.0.0, the oldest version this platform accepts): "
        f"download the new version from {backend.url}/api/workers/download/linux, "
        "install it and start the agent again"
    )
    assert installed.returncode == 5, installed.stdout + installed.stderr
    assert installed.stderr.strip().splitlines()[-1] == sentence
    assert not wrote
    assert started.returncode == 5, started.stdout + started.stderr
    assert started.stderr.strip().splitlines()[-1] == sentence


def test_an_enrollment_file_beside_install_sh_goes_with_the_executable(
    release: Release, backend: BackendProcess, tmp_path: Path
) -> None:
    key = make_user_and_key(backend, "enzo")
    unpacked = tmp_path / release.stem
    shutil.copytree(release.unpacked, unpacked)
    enroll = unpacked / "training-agent.enroll.json"
    enroll.write_text(json.dumps({"backend_url": backend.url, "api_key": key}))

    installed = run([str(unpacked / "install.sh"), "--yes"], user_env(tmp_path))

    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert not enroll.exists()  # moved, not copied: no second copy of the secret
    config = tmp_path / "agent" / "config" / "config.toml"
    assert f'backend_url = "{backend.url}"' in config.read_text()


def test_an_enrolled_download_of_the_real_build_connects_with_no_key_typed(
    release: Release, tmp_path: Path
) -> None:
    releases = tmp_path / "releases"
    add_release(release, releases)
    settings = {"TRAINING_BACKEND_RELEASES_DIR": str(releases)}
    with start_backend(tmp_path / "backend", env=settings) as backend:
        password = backend.cli("users", "create", "emma").splitlines()[1]
        downloads = tmp_path / "downloads"
        downloads.mkdir()
        archive = downloads / release.archive.name
        with httpx.Client(base_url=backend.url, timeout=60) as page:
            signed_in = page.post("/api/auth/login", json={"name": "emma", "password": password})
            signed_in.raise_for_status()
            params: dict[str, str | int] = {"enroll": 1, "arch": current_arch()}
            with page.stream("GET", "/api/workers/download/linux", params=params) as answer:
                assert answer.status_code == 200
                with archive.open("wb") as handle:
                    for chunk in answer.iter_bytes():
                        handle.write(chunk)
            run(["tar", "-xzf", archive.name], user_env(tmp_path), cwd=downloads)
            unpacked = downloads / release.stem
            # The executable is the published one: its checksum is the one in SHA256SUMS.
            assert (unpacked / "training-agent").read_bytes() == release.executable.read_bytes()

            installed = run([str(unpacked / "install.sh"), "--yes"], user_env(tmp_path))

            assert installed.returncode == 0, installed.stdout + installed.stderr
            [enrollment] = page.get("/api/workers/enrollments").json()["enrollments"]
        assert enrollment["status"] == "used"
        _job_id, agent = complete_a_command_job(backend, tmp_path, "emma")
        assert agent["agent_id"] == enrollment["agent_id"]
