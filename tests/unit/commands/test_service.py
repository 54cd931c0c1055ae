"""The command layer against a recording fake runner: what each action runs, and what a
machine without systemctl/launchctl/schtasks gets (one sentence; the unit still written)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.support.service import FakeRunner, make_spec
from training_agent.commands.service import run_service, service_command, tail
from training_agent.errors import ServiceError
from training_agent.paths import AgentPaths
from training_agent.service import ServiceState, service_manager
from training_agent.service.launchd import LaunchdService
from training_agent.service.systemd import SystemdService, reachable_by_others
from training_agent.service.windows import WindowsTask

UNIT = "training-agent.service"


def user_service(tmp_path: Path, runner: FakeRunner, said: list[str]) -> SystemdService:
    return SystemdService(
        make_spec(tmp_path), runner, said.append, unit_dir=tmp_path / "user", user="ana"
    )


def test_install_writes_enables_lingers_and_restarts_the_user_service(tmp_path: Path) -> None:
    runner = FakeRunner(answers={("loginctl", "show-user"): (0, "no\n")})
    said: list[str] = []
    manager = user_service(tmp_path, runner, said)

    assert service_command(manager, "install") == 0

    assert manager.unit_path.exists()
    assert runner.calls == [
        ("systemctl", "--user", "daemon-reload"),
        ("systemctl", "--user", "enable", UNIT),
        ("loginctl", "show-user", "ana", "--property=Linger", "--value"),
        ("loginctl", "enable-linger", "ana"),
        ("systemctl", "--user", "restart", UNIT),
    ]
    assert any("keeps running after you log out" in line for line in said)


def test_when_linger_cannot_be_enabled_the_command_is_offered(tmp_path: Path) -> None:
    runner = FakeRunner(
        answers={
            ("loginctl", "show-user"): (0, "no\n"),
            ("loginctl", "enable-linger"): (1, "Access denied\n"),
        }
    )
    said: list[str] = []
    service_command(user_service(tmp_path, runner, said), "install")
    assert any("sudo loginctl enable-linger ana" in line for line in said), said


def test_without_systemctl_install_writes_the_unit_and_says_how_to_run(tmp_path: Path) -> None:
    runner = FakeRunner(missing={"systemctl"})
    said: list[str] = []
    manager = user_service(tmp_path, runner, said)

    assert service_command(manager, "install") == 0

    assert manager.unit_path.exists()
    sentence = [line for line in said if "not available" in line]
    assert len(sentence) == 1 and "'training-agent start'" in sentence[0]
    assert str(manager.unit_path) in sentence[0]
    with pytest.raises(ServiceError, match="systemctl is not available"):
        service_command(manager, "start")


def test_a_failing_systemctl_is_one_sentence_with_its_reason(tmp_path: Path) -> None:
    runner = FakeRunner(answers={("systemctl",): (1, "Failed to connect to bus: No medium\n")})
    said: list[str] = []
    manager = user_service(tmp_path, runner, said)
    assert service_command(manager, "install") == 0
    assert any("(Failed to connect to bus: No medium)" in line for line in said)


def test_start_stop_restart_need_an_installed_service(tmp_path: Path) -> None:
    runner = FakeRunner()
    manager = user_service(tmp_path, runner, [])
    with pytest.raises(ServiceError, match="service install"):
        service_command(manager, "stop")
    manager.write_unit()
    for action in ("start", "stop", "restart"):
        assert service_command(manager, action) == 0
    assert runner.calls[-3:] == [
        ("systemctl", "--user", "start", UNIT),
        ("systemctl", "--user", "stop", UNIT),
        ("systemctl", "--user", "restart", UNIT),
    ]


@pytest.mark.parametrize(
    ("answer", "state", "code"),
    [
        ((0, "ActiveState=active\nSubState=running\nExecMainStatus=0\n"), "running", 0),
        ((0, "ActiveState=failed\nSubState=failed\nExecMainStatus=1\n"), "stopped", 3),
        ((1, "Failed to connect to bus\n"), "unknown", 3),
    ],
)
def test_status_reads_systemctl_show(
    tmp_path: Path, answer: tuple[int, str], state: str, code: int
) -> None:
    manager = user_service(tmp_path, FakeRunner(answers={("systemctl",): answer}), [])
    manager.write_unit()
    out = io.StringIO()
    assert service_command(manager, "status", out=out) == code
    assert out.getvalue().startswith(f"systemd user service: {state} (")


def test_status_of_a_service_never_installed(tmp_path: Path) -> None:
    runner = FakeRunner()
    out = io.StringIO()
    assert service_command(user_service(tmp_path, runner, []), "status", out=out) == 3
    assert "not installed" in out.getvalue() and runner.calls == []


def test_uninstall_disables_and_removes_the_unit(tmp_path: Path) -> None:
    runner = FakeRunner()
    manager = user_service(tmp_path, runner, [])
    manager.write_unit()
    assert service_command(manager, "uninstall") == 0
    assert not manager.unit_path.exists()
    assert ("systemctl", "--user", "disable", "--now", UNIT) in runner.calls


def test_launchd_install_bootstraps_the_agent_into_the_gui_domain(tmp_path: Path) -> None:
    runner = FakeRunner()
    manager = LaunchdService(make_spec(tmp_path), runner, agents_dir=tmp_path / "LA", uid=501)
    assert service_command(manager, "install") == 0
    target = "gui/501/org.training-agent.agent"
    assert runner.calls == [
        ("launchctl", "bootout", target),
        ("launchctl", "bootstrap", "gui/501", str(manager.unit_path)),
    ]
    runner.answers[("launchctl", "print")] = (0, "\tstate = running\n\tpid = 42\n")
    assert manager.status().state is ServiceState.RUNNING
    service_command(manager, "stop")
    assert runner.calls[-1] == ("launchctl", "kill", "SIGTERM", target)


def test_windows_install_registers_the_task_from_its_xml_and_runs_it(tmp_path: Path) -> None:
    runner = FakeRunner(answers={("schtasks", "/Query"): (0, "TaskName: x\nStatus: Running\n")})
    manager = WindowsTask(make_spec(tmp_path), runner)
    assert service_command(manager, "install") == 0
    assert runner.calls[0] == (
        "schtasks", "/Create", "/TN", "training-agent", "/XML", str(manager.unit_path), "/F",
    )  # fmt: skip
    assert runner.calls[-1] == ("schtasks", "/Run", "/TN", "training-agent")
    assert manager.status().state is ServiceState.RUNNING


def test_system_scope_is_linux_only_and_lives_in_its_own_directory(tmp_path: Path) -> None:
    paths = AgentPaths.under(tmp_path)
    with pytest.raises(ServiceError, match="--system is for Linux"):
        service_manager(paths, system=True, platform="darwin")
    manager = service_manager(paths, system=True, platform="linux", environ={})
    assert str(manager.unit_path) == "/etc/systemd/system/training-agent.service"
    assert manager.spec.environment == {"TRAINING_AGENT_HOME": "/var/lib/training-agent"}


def test_the_system_user_is_created_once(tmp_path: Path) -> None:
    runner = FakeRunner(answers={("getent",): (2, "")})
    manager = SystemdService(make_spec(tmp_path), runner, system=True, unit_dir=tmp_path)
    manager.create_system_user()
    assert runner.calls[-1][:2] == ("useradd", "--system")
    runner.answers[("useradd",)] = (9, "useradd: Permission denied.\n")
    with pytest.raises(ServiceError, match=r"as root \(sudo\)"):
        manager.create_system_user()


def test_service_run_turns_revoked_into_zero_and_restarts_after_errors() -> None:
    codes = iter([1, 1, 4])
    slept: list[float] = []
    said: list[str] = []
    assert run_service(lambda: next(codes), restart_on_failure=True, say=said.append,
                       sleep=slept.append) == 0  # fmt: skip
    assert slept == [10.0, 20.0]
    assert "revoked" in said[-1]
    assert run_service(lambda: 1, restart_on_failure=False, say=said.append) == 1
    assert run_service(lambda: 0, restart_on_failure=True, say=said.append) == 0


def test_tail_prints_the_last_lines_and_follows(tmp_path: Path) -> None:
    log = tmp_path / "agent.log"
    log.write_text("".join(f"line {n}\n" for n in range(10)))
    out = io.StringIO()
    rounds = iter([True, True, False])

    def grow(_seconds: float) -> None:
        with log.open("a") as handle:
            handle.write("added\n")

    tail(log, lines=2, follow=True, out=out, sleep=grow, keep_going=lambda: next(rounds))
    assert out.getvalue() == "line 8\nline 9\nadded\n"


def test_a_program_in_a_private_directory_is_warned_about(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    program = private / "training-agent"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    assert not reachable_by_others(program)
    assert reachable_by_others(Path("/bin/sh"))


def test_service_run_starts_the_agent_through_the_update_guard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from training_agent import cli
    from training_agent.update import guard

    guarded: list[Path] = []

    def fake_guard(start: object, *, state_dir: Path, version: str) -> int:
        guarded.append(state_dir)
        return 0

    monkeypatch.setenv("TRAINING_AGENT_HOME", str(tmp_path))
    monkeypatch.setattr(guard, "guarded_start", fake_guard)

    assert cli.main(["service", "run"]) == 0
    assert guarded == [AgentPaths.from_env().state_dir]
