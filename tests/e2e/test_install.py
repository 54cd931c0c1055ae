"""``training-agent install``/``uninstall`` as processes against the real backend, in a
throwaway HOME (keyring's fail backend: the key goes to the owner-only file)."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.agent import agent_env
from tests.support.backend import BackendProcess, free_port
from tests.support.e2e import make_user_and_key

pytestmark = pytest.mark.e2e


def install_env(tmp_path: Path, backend_url: str, api_key: str) -> dict[str, str]:
    env = agent_env(tmp_path / "agent", backend_url=backend_url, api_key=api_key)
    env["HOME"] = str(tmp_path / "home")
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "training_agent", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def all_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def test_install_uninstall_install_keeps_state_and_purge_removes_it(
    backend: BackendProcess, tmp_path: Path
) -> None:
    key = make_user_and_key(backend, "ines")
    env = install_env(tmp_path, backend.url, key)
    home = tmp_path / "agent"
    launcher = tmp_path / "home" / ".local" / "bin" / "training-agent"

    first = run(env, "install", "--yes", "--service", "none")

    assert first.returncode == 0, first.stderr
    config = home / "config" / "config.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert f'backend_url = "{backend.url}"' in config.read_text()
    assert key not in first.stdout + first.stderr
    assert [p for p in all_files(home) if key.encode() in p.read_bytes()] == [
        home / "config" / "credentials.json"
    ]
    assert "training-agent status" in first.stderr
    version = subprocess.run([str(launcher), "version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("training-agent ")
    agent_id = (home / "state" / "agent_id").read_text()
    with config.open("a") as handle:
        handle.write("max_concurrent_jobs = 2\n")
    (home / "state" / "kept").write_text("mine")

    again = run(env, "install", "--yes", "--service", "none")
    assert again.returncode == 0, again.stderr
    removed = run(env, "uninstall")
    assert removed.returncode == 0, removed.stderr
    assert not launcher.exists() and (home / "state" / "kept").exists()
    third = run(env, "install", "--yes", "--service", "none")
    assert third.returncode == 0, third.stderr

    assert (home / "state" / "agent_id").read_text() == agent_id
    assert (home / "state" / "kept").read_text() == "mine"
    assert "max_concurrent_jobs = 2" in config.read_text()
    assert config.read_text().count("backend_url") == 1
    assert launcher.exists()

    purge = run(env, "uninstall", "--purge")
    assert purge.returncode == 0, purge.stderr
    assert all_files(home) == [] and not launcher.exists()


@pytest.mark.parametrize(
    ("url", "key", "message"),
    [
        ("app.example.com", None, "must start with https://"),
        (None, "wak_" + "x" * 32, "the backend refused the API key (401)"),
        (None, "not-a-key", "not an API key"),
        ("unreachable", None, "cannot reach"),
    ],
)
def test_bad_input_is_one_sentence_and_changes_nothing(
    backend: BackendProcess, tmp_path: Path, url: str | None, key: str | None, message: str
) -> None:
    good_key = make_user_and_key(backend, "olga")
    backend_url = backend.url if url is None else url
    if url == "unreachable":
        backend_url = f"http://127.0.0.1:{free_port()}"
    env = install_env(tmp_path, backend_url, key or good_key)

    result = run(env, "install", "--yes", "--service", "none")

    assert result.returncode != 0
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert all_files(tmp_path / "agent") == [] and all_files(tmp_path / "home") == []


def test_plain_http_to_another_host_is_warned_about(tmp_path: Path) -> None:
    # .invalid never resolves (RFC 6761): the check fails fast after the warning.
    env = install_env(tmp_path, "http://agent-test.invalid", "wak_" + "y" * 32)
    result = run(env, "install", "--yes", "--service", "none")
    assert "is not encrypted (http://)" in result.stderr
    assert result.returncode != 0  # and then unreachable: nothing written
    assert all_files(tmp_path / "agent") == []


def test_no_arguments_installs_when_unconfigured_and_shows_status_when_configured(
    backend: BackendProcess, tmp_path: Path
) -> None:
    key = make_user_and_key(backend, "noor")
    env = install_env(tmp_path, backend.url, key)

    first = run(env)  # like a double-click: install, inputs from the environment

    assert first.returncode == 0, first.stderr
    assert (tmp_path / "agent" / "config" / "config.toml").exists()
    second = run(env)  # configured: the status of an agent that is not running
    assert second.returncode == 3, second.stderr
