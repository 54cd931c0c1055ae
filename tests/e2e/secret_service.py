"""``login`` and ``logout`` against the real Secret Service (gnome-keyring on a private
D-Bus session), for any way of running the agent: from source or the built executable."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.agent import agent_env

SECRET_SERVICE_TOOLS = ("dbus-run-session", "gnome-keyring-daemon", "secret-tool")


def check_secret_service_round_trip(agent_command: list[str], tmp_path: Path) -> None:
    """``login`` stores the key in the Secret Service (no warning, no file), ``logout``
    removes it; skips without the tools, except under ``CI=true``."""
    missing = [tool for tool in SECRET_SERVICE_TOOLS if shutil.which(tool) is None]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must install the Secret Service tools; missing: {missing}")
        pytest.skip(f"no Secret Service tools here: {missing}")
    home = tmp_path / "agent"
    url = "http://127.0.0.1:9"
    key = "wak_" + "Secret0Service1" * 2 + "xy"
    env = agent_env(home, backend_url=url, api_key="")
    del env["API_KEY"]
    env.pop("PYTHON_KEYRING_BACKEND", None)
    env["HOME"] = str(tmp_path / "home")  # gnome-keyring's collection goes here
    (tmp_path / "home").mkdir()
    env["KEY_FILE"] = str(tmp_path / "key")
    (tmp_path / "key").write_text(key + "\n")
    agent = " ".join(agent_command)
    script = f"""
set -e
echo -n pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null
{agent} login --api-key-stdin < "$KEY_FILE"
echo "lookup=$(secret-tool lookup service training-agent username {url})"
{agent} logout
echo "after=$(secret-tool lookup service training-agent username {url} || true)"
"""
    result = subprocess.run(
        ["dbus-run-session", "--", "sh", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"lookup={key}" in result.stdout, result.stdout + result.stderr
    assert "after=\n" in result.stdout
    assert "saved in the keyring (SecretService Keyring)" in result.stderr
    assert "warning" not in result.stderr
    stored = [p for p in home.rglob("*") if p.is_file() and key.encode() in p.read_bytes()]
    assert stored == []
