"""The Windows self-update, on a temp folder laid out as Windows has it (no links): each
build in ``versions/``, the file ``current`` naming the one the launcher
``training-agent.cmd`` runs, a switch or a rollback that rewrites ``current`` and exits
``RELAUNCH_EXIT`` so the launcher starts the build named now, and the scheduled task
that runs the launcher. Nothing here runs on Windows itself: untested there."""

from __future__ import annotations

import hashlib
import io
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.support.fake_backend import API_KEY, IDENTITY
from tests.support.service import FakeRunner, make_spec
from tests.unit.update.test_updater import KEY, Server
from training_agent.api import BackendClient
from training_agent.api.models import PollResponse
from training_agent.daemon import EXIT_UPDATE
from training_agent.service.windows import WindowsTask, task_action
from training_agent.update.guard import RECORD_FILE, guarded_start
from training_agent.update.layout import RELAUNCH_EXIT, WINDOWS_LAUNCHER, InstallLayout
from training_agent.update.record import Trial, UpdateRecord
from training_agent.update.setup import why_not
from training_agent.update.signature import public_key_text, sign
from training_agent.update.updater import Updater, UpdateState

NEW = "0.3.0"
REPO = Path(__file__).resolve().parents[3]
TASK_NS = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}


def fill(layout: InstallLayout, version: str) -> Path:
    folder = layout.new_folder(version)
    (folder / "training-agent.exe").write_bytes(f"MZ {version}".encode())
    (folder / "_internal").mkdir()
    return folder


@pytest.fixture
def layout(tmp_path: Path) -> InstallLayout:
    """A Windows install directory whose current build is 0.2.0."""
    layout = InstallLayout(tmp_path / "bin", platform="win32")
    layout.activate(fill(layout, "0.2.0"))
    return layout


def windows_release(version: str = NEW) -> bytes:
    """A Windows release: a zip of one folder with ``training-agent.exe``, ``_internal``
    and the installer scripts, plus an entry that tries to leave the folder."""
    stem = f"training-agent-{version}-windows-amd64"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{stem}/training-agent.exe", f"MZ {version}")
        archive.writestr(f"{stem}/_internal/base_library.zip", "library")
        archive.writestr(f"{stem}/install.ps1", "# installer")
        archive.writestr("../escaped.txt", "outside")
    return buffer.getvalue()


def test_a_switch_rewrites_current_and_the_launcher_runs_what_it_names(
    layout: InstallLayout,
) -> None:
    old = layout.current()
    assert old is not None and old.name.startswith("0.2.0-")
    launcher = layout.link.stat()

    new = layout.activate(fill(layout, NEW))

    assert layout.pointer.read_bytes() == f"{new.name}\r\n".encode()
    assert layout.current() == new.resolve() and old.is_dir()  # the old one kept
    assert layout.link.name == "training-agent.cmd"
    assert layout.link.read_bytes() == ("\r\n".join(WINDOWS_LAUNCHER) + "\r\n").encode()
    assert layout.link.stat().st_ino == launcher.st_ino  # a running launcher is left alone
    assert not list(layout.install_dir.glob(".*.new"))
    found = InstallLayout.of_executable(new / "training-agent.exe", "win32")
    assert found == layout


def test_the_launcher_starts_the_named_build_again_after_a_switch_exit() -> None:
    assert RELAUNCH_EXIT == EXIT_UPDATE
    lines = list(WINDOWS_LAUNCHER)
    run = lines.index(":run")
    assert lines[run + 1] == 'set /p build=<"%~dp0current"'
    assert lines[run + 2] == '"%~dp0versions\\%build%\\training-agent.exe" %*'
    # exactly 75 (errorlevel N means N or more) goes round again; any other code ends it
    assert lines[run + 3] == "if errorlevel 75 if not errorlevel 76 goto run"
    assert lines[-1] == "exit /b %errorlevel%"


def test_install_ps1_writes_the_same_launcher() -> None:
    script = (REPO / "installer" / "install.ps1").read_text(encoding="utf-8")
    for line in WINDOWS_LAUNCHER:
        assert line.replace("'", "''") in script, line


def updater(layout: InstallLayout, tmp_path: Path, data: bytes, **overrides: Any) -> Updater:
    """A Windows agent's updater; the backend's download serves ``data``."""
    client = BackendClient(
        base_url="http://backend.test",
        api_key=SecretStr(API_KEY),
        identity=IDENTITY,
        transport=httpx.MockTransport(Server(data)),
    )
    options: dict[str, Any] = {
        "client": client,
        "record": UpdateRecord.load(tmp_path / "state" / RECORD_FILE),
        "layout": layout,
        "version": "0.2.0",
        "platform": "windows",
        "arch": "amd64",
        "keys": (public_key_text(KEY.public_key()),),
        "work_dir": tmp_path / "state",
        "try_new_build": lambda folder, version: None,  # no .exe runs here
    }
    return Updater(**{**options, **overrides})


def windows_offer(data: bytes) -> PollResponse:
    name = f"training-agent-{NEW}-windows-amd64.zip"
    sha256 = hashlib.sha256(data).hexdigest()
    archive = {"arch": "amd64", "filename": name, "url": "http://backend.test/x"}
    archive |= {"sha256": sha256, "signature": sign(KEY, name, sha256)}
    update = {"version": NEW, "archives": [archive]}
    return PollResponse.model_validate({"job": None, "agent_update": update})


async def test_an_update_unpacks_the_zip_switches_and_exits_for_the_launcher(
    layout: InstallLayout, tmp_path: Path
) -> None:
    before = layout.current()
    data = windows_release()
    agent = updater(layout, tmp_path, data)
    agent.observe(windows_offer(data))
    assert agent._task is not None
    await agent._task
    assert agent.status.state is UpdateState.READY, agent.status

    with pytest.raises(SystemExit) as exited:
        agent.restart()

    assert exited.value.code == RELAUNCH_EXIT
    new = layout.current()
    assert new is not None and new != before and new.name.startswith(f"{NEW}-")
    assert sorted(p.name for p in new.iterdir()) == ["_internal", "training-agent.exe"]
    assert not list(tmp_path.rglob("escaped.txt"))
    trial = UpdateRecord.load(tmp_path / "state" / RECORD_FILE).trial
    assert trial is not None and trial.from_folder == str(before)


def on_trial(layout: InstallLayout, tmp_path: Path, deadline: float) -> tuple[Path, Path, Trial]:
    """0.3.0 switched to and on trial; the old and new folders and the trial (saved)."""
    old = layout.current()
    assert old is not None
    new = layout.activate(fill(layout, NEW))
    record = UpdateRecord.load(tmp_path / "state" / RECORD_FILE)
    record.trial = Trial("0.2.0", str(old), NEW, str(new), deadline=deadline)
    record.save()
    return old, new, record.trial


async def test_a_build_that_does_not_poll_is_rolled_back_through_the_launcher(
    layout: InstallLayout, tmp_path: Path
) -> None:
    old, _new, trial = on_trial(layout, tmp_path, deadline=0.0)

    async def sleep(seconds: float) -> None:
        return None

    agent = updater(layout, tmp_path, b"", version=NEW, trial=trial, sleep=sleep)
    await agent.watch_trial()

    assert layout.pointer.read_text().strip() == old.name and agent.wants_restart
    with pytest.raises(SystemExit) as exited:
        agent.restart()
    assert exited.value.code == RELAUNCH_EXIT


def test_a_build_on_trial_that_crashes_at_start_hands_back_to_the_launcher(
    layout: InstallLayout, tmp_path: Path
) -> None:
    old, new, _trial = on_trial(layout, tmp_path, deadline=2000.0)

    def start() -> int:
        raise ImportError("No module named '_sqlite3'")

    with pytest.raises(SystemExit) as exited:
        guarded_start(
            start,
            state_dir=tmp_path / "state",
            version=NEW,
            executable=new / "training-agent.exe",
            clock=lambda: 1000.0,
            platform="win32",
        )

    assert exited.value.code == RELAUNCH_EXIT
    assert layout.current() == old.resolve()
    attempts = UpdateRecord.load(tmp_path / "state" / RECORD_FILE).attempts
    assert "_sqlite3" in attempts[NEW]["reason"]


def test_the_task_runs_the_launcher_under_cmd(tmp_path: Path) -> None:
    launcher = r"C:\Users\Ana Lu\AppData\Local\training-agent\bin\training-agent.cmd"
    task = WindowsTask(make_spec(tmp_path, program=(launcher,)), FakeRunner())
    root = ET.fromstring(task.render().encode("utf-16"))
    action = root.find("t:Actions/t:Exec", TASK_NS)

    assert action is not None
    assert action.findtext("t:Command", namespaces=TASK_NS) == "cmd.exe"
    assert action.findtext("t:Arguments", namespaces=TASK_NS) == (
        f'/d /s /c ""{launcher}" service run --restart-on-failure"'
    )
    plain = r"C:\x\training-agent.exe"
    assert task_action((plain, "service", "run")) == (plain, "service run")


def test_a_windows_executable_updates_itself_only_in_the_layout(layout: InstallLayout) -> None:
    assert why_not(None, frozen=True, layout=layout, platform="win32") is None
    said = why_not(None, frozen=True, layout=None, platform="win32")
    assert said == (
        "this executable was not put in place by install.cmd: install it with install.cmd "
        "to have it update itself"
    )
