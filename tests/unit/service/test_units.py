"""The generated definitions: systemd units pass ``systemd-analyze verify``, the launchd
plist parses and carries the keys launchd needs, the Windows task XML is well-formed
and asks for no elevation."""

from __future__ import annotations

import os
import plistlib
import re
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.support.service import FakeRunner, make_spec
from training_agent.paths import AgentPaths
from training_agent.service.launchd import LABEL, LaunchdService
from training_agent.service.spec import build_spec, carried_environment
from training_agent.service.systemd import SystemdService
from training_agent.service.templates import TEMPLATE_DIRS, template_path
from training_agent.service.windows import WindowsTask

TASK_NS = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
REPO = Path(__file__).resolve().parents[3]


def systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must install systemd (systemd-analyze)")
        pytest.skip("systemd-analyze is not installed")
    return tool


def verify(unit: Path, tmp_path: Path, *, user: bool) -> subprocess.CompletedProcess[str]:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    args = [systemd_analyze(), *(["--user"] if user else []), "verify", str(unit)]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)


def written(manager: SystemdService | LaunchdService | WindowsTask) -> Path:
    manager.write_unit()
    return manager.unit_path


def test_the_user_unit_passes_systemd_analyze_and_says_how_to_stop(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, program=(sys.executable, "-m", "training_agent"))
    unit = written(SystemdService(spec, FakeRunner(), unit_dir=tmp_path / "user"))

    result = verify(unit, tmp_path, user=True)

    assert result.returncode == 0, result.stdout + result.stderr
    text = unit.read_text()
    assert f'ExecStart="{sys.executable}" "-m" "training_agent" "start"' in text
    for line in (
        "Restart=on-failure",
        "RestartPreventExitStatus=4",
        "KillMode=mixed",
        "TimeoutStopSec=105",  # the cancel grace (45 s) plus the margin
        'Environment="HTTPS_PROXY=http://proxy.example:3128"',
        'Environment="NO_PROXY=localhost"',
        "WantedBy=default.target",
    ):
        assert line in text.splitlines(), line
    assert "User=" not in text and "API_KEY" not in text
    assert oct(unit.stat().st_mode & 0o777) == "0o600"


def test_the_system_unit_runs_as_its_own_user_and_passes_systemd_analyze(
    tmp_path: Path,
) -> None:
    spec = make_spec(tmp_path, environment={"TRAINING_AGENT_HOME": "/var/lib/training-agent"})
    unit = written(SystemdService(spec, FakeRunner(), system=True, unit_dir=tmp_path / "system"))

    result = verify(unit, tmp_path, user=False)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = unit.read_text().splitlines()
    assert "User=training-agent" in lines and "StateDirectory=training-agent" in lines
    assert 'Environment="TRAINING_AGENT_HOME=/var/lib/training-agent"' in lines
    assert "WantedBy=multi-user.target" in lines


def test_odd_characters_in_paths_and_variables_survive_systemd_quoting(tmp_path: Path) -> None:
    odd = tmp_path / "my $HOME 100%"
    odd.mkdir()
    python = odd / "python3"
    python.symlink_to(sys.executable)
    spec = make_spec(
        tmp_path,
        program=(str(python), "-m", "training_agent"),
        environment={"HTTPS_PROXY": 'http://u:p%40ss"w$rd@proxy:3128'},
    )
    unit = written(SystemdService(spec, FakeRunner(), unit_dir=tmp_path / "user"))

    result = verify(unit, tmp_path, user=True)

    assert result.returncode == 0, result.stdout + result.stderr
    text = unit.read_text()
    assert f'ExecStart="{tmp_path}/my $HOME 100%%/python3" "-m"' in text
    assert r'Environment="HTTPS_PROXY=http://u:p%%40ss\"w$$rd@proxy:3128"' in text


def test_a_broken_unit_fails_verification(tmp_path: Path) -> None:
    # The check above can fail: a unit whose program does not exist is refused.
    spec = make_spec(tmp_path, program=(str(tmp_path / "no-such-agent"),))
    unit = written(SystemdService(spec, FakeRunner(), unit_dir=tmp_path / "user"))
    assert verify(unit, tmp_path, user=True).returncode != 0


def test_the_plist_parses_and_carries_what_launchd_needs(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    manager = LaunchdService(spec, FakeRunner(), agents_dir=tmp_path / "LaunchAgents", uid=501)

    plist = plistlib.loads(written(manager).read_bytes())

    assert plist["Label"] == LABEL and manager.unit_path.name == f"{LABEL}.plist"
    assert plist["ProgramArguments"] == [*spec.program, "service", "run"]
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["ExitTimeOut"] > spec.cancel_grace_s
    assert plist["EnvironmentVariables"] == spec.environment
    assert plist["StandardErrorPath"] == str(spec.paths.log_dir / "service.log")
    assert spec.paths.log_dir.is_dir()  # launchd opens the log: it must exist


def test_the_task_xml_is_well_formed_utf16_and_asks_for_no_elevation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USERDOMAIN", "WORKGROUP")
    monkeypatch.setenv("USERNAME", "ana")
    program = (r"C:\Program Files\R&D\training-agent.exe",)
    manager = WindowsTask(make_spec(tmp_path, program=program), FakeRunner())

    raw = written(manager).read_bytes()
    root = ET.fromstring(raw)  # UTF-16 with a BOM, as schtasks reads it

    assert raw.startswith(b"\xff\xfe")
    principal = root.find("t:Principals/t:Principal", TASK_NS)
    assert principal is not None
    assert principal.findtext("t:RunLevel", namespaces=TASK_NS) == "LeastPrivilege"
    assert principal.findtext("t:LogonType", namespaces=TASK_NS) == "InteractiveToken"
    assert principal.findtext("t:UserId", namespaces=TASK_NS) == r"WORKGROUP\ana"
    assert b"HighestAvailable".decode() not in raw.decode("utf-16")
    trigger = root.find("t:Triggers/t:LogonTrigger", TASK_NS)
    assert trigger is not None
    assert trigger.findtext("t:UserId", namespaces=TASK_NS) == r"WORKGROUP\ana"
    restart = root.find("t:Settings/t:RestartOnFailure", TASK_NS)
    assert restart is not None and restart.findtext("t:Count", namespaces=TASK_NS) == "999"
    assert root.findtext("t:Settings/t:ExecutionTimeLimit", namespaces=TASK_NS) == "PT0S"
    action = root.find("t:Actions/t:Exec", TASK_NS)
    assert action is not None
    assert action.findtext("t:Command", namespaces=TASK_NS) == program[0]
    assert action.findtext("t:Arguments", namespaces=TASK_NS) == (
        "service run --restart-on-failure"
    )


def test_the_spec_carries_proxy_and_ca_variables_but_never_the_key(tmp_path: Path) -> None:
    environ = {
        "HTTPS_PROXY": "http://proxy:3128",
        "no_proxy": ".internal",
        "SSL_CERT_FILE": "/etc/ca.pem",
        "API_KEY": "wak_" + "k" * 32,
        "HTTP_PROXY": "",
        "PATH": "/usr/bin",
    }
    assert carried_environment(environ) == {
        "HTTPS_PROXY": "http://proxy:3128",
        "no_proxy": ".internal",
        "SSL_CERT_FILE": "/etc/ca.pem",
    }
    paths = AgentPaths.under(tmp_path)
    paths.config_dir.mkdir(parents=True)
    paths.config_file.write_text("cancel_grace_seconds = 120\n")
    spec = build_spec(paths, environ=environ)
    assert spec.stop_timeout_s > 120 and "API_KEY" not in spec.environment


def test_templates_ship_in_the_wheel_and_are_found_from_a_checkout() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    force = project["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert force == {"packaging/service": "training_agent/service/templates"}
    shipped = {path.name for path in (REPO / "packaging" / "service").iterdir()}
    assert {"training-agent.service", "training-agent.plist", "training-agent-task.xml"} <= shipped
    for name in shipped:
        assert template_path(name).parent in TEMPLATE_DIRS
    assert all(re.fullmatch(r"[\w.-]+", name) for name in shipped)
