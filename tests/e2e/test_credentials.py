"""``training-agent login``/``logout`` as processes: the real Secret Service (gnome-keyring
on a private D-Bus), and keyring's fail backend with the owner-only fallback file that the
real agent then runs on."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.agent import agent_env, start_agent, wait_agent
from tests.support.backend import BackendProcess
from tests.support.e2e import Owner, make_user_and_key, submit
from tests.support.secret_service import check_secret_service_round_trip

pytestmark = pytest.mark.e2e

AGENT = [sys.executable, "-m", "training_agent"]


def run(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AGENT, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


def files_containing(root: Path, text: str) -> list[Path]:
    return sorted(
        path for path in root.rglob("*") if path.is_file() and text.encode() in path.read_bytes()
    )


def test_without_a_keyring_the_key_goes_to_an_owner_only_file_the_agent_runs_on(
    backend: BackendProcess, tmp_path: Path
) -> None:
    key = make_user_and_key(backend, "kim")
    job_id = submit(backend, tmp_path, "kim", {"type": "demo", "samples": 64, "epochs": 1})
    home = tmp_path / "agent"
    env = agent_env(home, backend_url=backend.url, api_key=key)
    del env["API_KEY"]
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"

    login = run(env, "login", "--api-key-stdin", stdin=key + "\n")

    assert login.returncode == 0, login.stderr
    credential_file = home / "config" / "credentials.json"
    assert stat.S_IMODE(credential_file.stat().st_mode) == 0o600
    warnings = [line for line in login.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "no usable OS keyring" in warnings[0], login.stderr
    assert key not in login.stdout + login.stderr
    assert files_containing(home, key) == [credential_file]

    agent = start_agent(env, "--max-jobs", "1")
    code, output = wait_agent(agent)
    assert code == 0, output
    assert Owner(backend, key).state(job_id)["status"] == "completed"
    assert key not in output
    assert files_containing(home, key) == [credential_file]  # not in logs, state or jobs

    logout = run(env, "logout")
    assert logout.returncode == 0, logout.stderr
    assert files_containing(home, key) == []
    again = start_agent(env)
    code, output = wait_agent(again)
    assert code == 2 and "training-agent login" in output


def test_a_wrong_shaped_key_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    env = agent_env(tmp_path / "agent", backend_url="http://127.0.0.1:9", api_key="")
    del env["API_KEY"]
    result = run(env, "login", "--api-key-stdin", stdin="sk-not-a-key\n")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "not an API key" in result.stderr
    assert not (tmp_path / "agent").exists()


def test_the_key_lives_in_the_real_secret_service(backend: BackendProcess, tmp_path: Path) -> None:
    check_secret_service_round_trip(AGENT, backend, tmp_path, "sasha")


def test_a_key_the_backend_refuses_is_not_stored(backend: BackendProcess, tmp_path: Path) -> None:
    home = tmp_path / "agent"
    env = agent_env(home, backend_url=backend.url, api_key="")
    del env["API_KEY"]
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"

    result = run(env, "login", "--api-key-stdin", stdin="wak_" + "r" * 32 + "\n")

    assert result.returncode == 1
    assert "the backend refused the API key (401)" in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert not home.exists() or [p for p in home.rglob("*") if p.is_file()] == []
