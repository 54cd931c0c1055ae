"""``login`` and ``logout`` against the real Secret Service (gnome-keyring on a private
D-Bus session), for any way of running the agent: from source or the built executable."""

from __future__ import annotations

from pathlib import Path

from tests.support.agent import agent_env
from tests.support.backend import BackendProcess
from tests.support.e2e import make_user_and_key, require_secret_service, with_secret_service


def check_secret_service_round_trip(
    agent_command: list[str], backend: BackendProcess, tmp_path: Path, user: str
) -> None:
    """``login`` checks the key with one poll and stores it in the Secret Service (no
    warning, no file), ``logout`` removes it; skips without the tools, except under CI."""
    require_secret_service()
    home = tmp_path / "agent"
    url = backend.url
    key = make_user_and_key(backend, user)
    env = agent_env(home, backend_url=url, api_key="")
    del env["API_KEY"]
    env.pop("PYTHON_KEYRING_BACKEND", None)
    env["HOME"] = str(tmp_path / "home")  # gnome-keyring's collection goes here
    (tmp_path / "home").mkdir()
    env["KEY_FILE"] = str(tmp_path / "key")
    (tmp_path / "key").write_text(key + "\n")
    agent = " ".join(agent_command)
    script = f"""
{agent} login --api-key-stdin < "$KEY_FILE"
echo "lookup=$(secret-tool lookup service training-agent username {url})"
{agent} logout
echo "after=$(secret-tool lookup service training-agent username {url} || true)"
"""
    result = with_secret_service(script, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"lookup={key}" in result.stdout, result.stdout + result.stderr
    assert "after=\n" in result.stdout
    assert "saved in the keyring (SecretService Keyring)" in result.stderr
    assert "warning" not in result.stderr
    stored = [p for p in home.rglob("*") if p.is_file() and key.encode() in p.read_bytes()]
    assert stored == []
