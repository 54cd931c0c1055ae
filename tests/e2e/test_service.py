"""``install`` with its service step, ``service ...`` and ``doctor`` as processes, against
the real backend. systemctl cannot run here (no systemd as PID 1): a stand-in
``systemctl``/``loginctl`` on PATH records what the agent asks of them, and a PATH without
them shows what a machine without systemd gets."""

from __future__ import annotations

import getpass
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_install import install_env, run
from tests.support.backend import BackendProcess
from tests.support.e2e import make_user_and_key, require_secret_service, with_secret_service
from tests.support.service import FakeRunner
from training_agent.commands.install import Installer, InstallOptions
from training_agent.paths import AgentPaths
from training_agent.service.spec import build_spec
from training_agent.service.systemd import SystemdService, system_paths

pytestmark = pytest.mark.e2e

UNIT = "training-agent.service"

# Records its arguments; `show` answers like a running service, `loginctl` like lingering.
STAND_IN = """#!/bin/sh
echo "$(basename "$0") $*" >> "$STAND_IN_LOG"
case "$*" in
    *show-user*) echo yes ;;
    *show*) printf 'ActiveState=active\\nSubState=running\\nExecMainStatus=0\\n' ;;
esac
"""


def with_stand_ins(env: dict[str, str], tmp_path: Path) -> Path:
    """Put the stand-in systemctl and loginctl first on PATH; the file they log to."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    for tool in ("systemctl", "loginctl"):
        (bin_dir / tool).write_text(STAND_IN)
        (bin_dir / tool).chmod(0o755)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env["STAND_IN_LOG"] = str(tmp_path / "calls.log")
    return tmp_path / "calls.log"


def unit_file(tmp_path: Path) -> Path:
    return tmp_path / "home" / ".config" / "systemd" / "user" / UNIT


def checks(output: str) -> dict[str, dict[str, Any]]:
    report = json.loads(output)
    assert set(report) == {"ok", "checks"}
    for check in report["checks"]:
        assert set(check) == {"name", "verdict", "detail", "hint"}
        assert check["verdict"] in ("OK", "WARN", "FAIL")
    return {check["name"]: check for check in report["checks"]}


def test_install_sets_up_the_user_service_and_uninstall_removes_it(
    backend: BackendProcess, tmp_path: Path
) -> None:
    env = install_env(tmp_path, backend.url, make_user_and_key(backend, "uma"))
    env["HTTPS_PROXY"] = "http://proxy.invalid:3128"
    env["NO_PROXY"] = "127.0.0.1,localhost"
    calls = with_stand_ins(env, tmp_path)

    installed = run(env, "install", "--yes")

    assert installed.returncode == 0, installed.stderr
    assert "training-agent status" in installed.stderr
    assert "training-agent dashboard" in installed.stderr
    unit = unit_file(tmp_path).read_text()
    assert 'Environment="HTTPS_PROXY=http://proxy.invalid:3128"' in unit
    assert f'Environment="TRAINING_AGENT_HOME={tmp_path / "agent"}"' in unit
    assert env["API_KEY"] not in unit
    assert calls.read_text().splitlines() == [
        "systemctl --user daemon-reload",
        f"systemctl --user enable {UNIT}",
        f"loginctl show-user {getpass.getuser()} --property=Linger --value",
        f"systemctl --user restart {UNIT}",
    ]
    status = run(env, "service", "status")
    assert status.returncode == 0 and "running" in status.stdout, status.stderr
    again = run(env, "install", "--yes")  # an upgrade: the unit rewritten, restarted
    assert again.returncode == 0, again.stderr
    assert calls.read_text().count(f"systemctl --user restart {UNIT}") == 2
    assert unit_file(tmp_path).read_text() == unit

    removed = run(env, "uninstall")

    assert removed.returncode == 0, removed.stderr
    assert not unit_file(tmp_path).exists()
    assert f"systemctl --user disable --now {UNIT}" in calls.read_text()


def test_without_systemctl_the_unit_is_written_and_the_way_to_start_is_said(
    tmp_path: Path,
) -> None:
    env = install_env(tmp_path, "http://127.0.0.1:9", "wak_" + "n" * 32)
    env["PATH"] = str(tmp_path / "empty")  # no systemctl, no loginctl

    installed = run(env, "service", "install")

    assert installed.returncode == 0, installed.stderr
    assert unit_file(tmp_path).exists()
    sentences = [line for line in installed.stderr.splitlines() if "not available" in line]
    assert len(sentences) == 1 and "run 'training-agent start'" in sentences[0]
    started = run(env, "service", "start")
    assert started.returncode == 1
    assert started.stderr.count("\n") == 1 and "systemctl is not available" in started.stderr


def test_doctor_against_a_live_backend_is_ok_where_this_machine_can_be(
    backend: BackendProcess, tmp_path: Path
) -> None:
    require_secret_service()
    env = install_env(tmp_path, backend.url, make_user_and_key(backend, "dora"))
    env.pop("PYTHON_KEYRING_BACKEND")  # the real Secret Service on a private D-Bus
    (tmp_path / "home").mkdir()
    with_stand_ins(env, tmp_path)
    agent = f"{sys.executable} -m training_agent"
    script = f"""
{agent} install --yes </dev/null >/dev/null 2>&1
unset API_KEY
{agent} doctor --json
"""
    done = with_secret_service(script, env)

    assert done.returncode == 0, done.stdout + done.stderr
    found = checks(done.stdout)
    not_ok = {name: check["detail"] for name, check in found.items() if check["verdict"] != "OK"}
    assert list(not_ok) == ["gpu"], not_ok  # no GPU and no NVML on this machine
    assert found["api key"]["detail"].startswith("accepted")
    assert found["keyring"]["detail"].startswith("keyring")
    assert found["service"]["detail"].startswith("running")
    assert found["gpu"]["hint"]


def test_doctor_against_a_dead_backend_fails_with_hints(
    backend: BackendProcess, tmp_path: Path
) -> None:
    env = install_env(tmp_path, backend.url, make_user_and_key(backend, "dan"))
    assert run(env, "install", "--yes", "--service", "none").returncode == 0
    backend.stop_server()

    text = run(env, "doctor")
    as_json = run(env, "doctor", "--json")

    assert text.returncode == 1 and as_json.returncode == 1
    first = text.stdout.splitlines()[0]
    assert first.startswith("FAIL  backend") and "connection refused" in first, text.stdout
    assert "fix: check the address" in text.stdout
    found = checks(as_json.stdout)
    assert found["backend"]["verdict"] == "FAIL" and found["backend"]["hint"]
    assert found["api key"]["verdict"] == "WARN"  # cannot be checked without the backend
    assert json.loads(as_json.stdout)["ok"] is False


def test_install_of_the_system_service_keeps_the_key_in_its_own_home(
    backend: BackendProcess, tmp_path: Path
) -> None:
    key = make_user_and_key(backend, "sys")
    runner = FakeRunner(answers={("getent",): (2, "")})  # the user does not exist yet
    system_home = tmp_path / "var-lib-training-agent"

    def services(paths: AgentPaths, *, system: bool, **given: Any) -> SystemdService:
        assert system
        spec = build_spec(system_paths(system_home), environ={"TRAINING_AGENT_HOME": "x"})
        return SystemdService(spec, given["runner"], given["say"], system=True,
                              unit_dir=tmp_path / "etc")  # fmt: skip

    out = io.StringIO()
    installer = Installer(
        paths=AgentPaths.under(tmp_path / "user"),
        environ={"API_KEY": key, "BACKEND_URL": backend.url},
        stdin=io.StringIO(),
        out=out,
        bin_dir=tmp_path / "bin",
        executable_dir=tmp_path,
        runner=runner,
        services=services,
    )

    assert installer.install(InstallOptions(yes=True, service="system")) == 0, out.getvalue()

    key_file = system_home / "config" / "credentials.json"
    assert key in key_file.read_text() and key_file.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "user").exists()  # nothing in the installing user's home
    assert [call[0] for call in runner.calls] == [
        "getent", "useradd", "chown", "systemctl", "systemctl", "systemctl",
    ]  # fmt: skip
    assert runner.calls[2] == ("chown", "-R", "training-agent:training-agent", str(system_home))
    assert runner.calls[-1] == ("systemctl", "restart", UNIT)
    assert "User=training-agent" in (tmp_path / "etc" / UNIT).read_text()
