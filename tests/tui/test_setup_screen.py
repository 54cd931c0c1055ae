"""The double-click setup screen: prefilled URL, hidden key, check against a real backend,
install through the same ``Installer`` as ``training-agent install``, then the dashboard."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import httpx
import pytest
from textual.pilot import Pilot
from textual.widgets import Button, Input, Static

from tests.support.backend import BackendProcess
from tests.support.e2e import make_user_and_key
from tests.support.fake_keyring import MemoryKeyring, use_backend
from training_agent.commands.install import ENROLL_FILE_NAME, Installer
from training_agent.paths import AgentPaths
from training_agent.tui.setup_screen import SetupApp

SIZE = (80, 24)
Factory = Callable[[TextIO], Installer]


@pytest.fixture
def make_installer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Factory:
    use_backend(monkeypatch, MemoryKeyring())
    (tmp_path / "exe").mkdir()

    def make(out: TextIO) -> Installer:
        return Installer(
            paths=AgentPaths.under(tmp_path / "agent"),
            environ={},
            stdin=io.StringIO(),
            out=out,
            bin_dir=tmp_path / "bin",
            executable_dir=tmp_path / "exe",
        )

    return make


def enroll(tmp_path: Path, url: str) -> None:
    (tmp_path / "exe" / ENROLL_FILE_NAME).write_text(json.dumps({"backend_url": url}))


def result_text(app: SetupApp) -> str:
    return str(app.query_one("#result", Static).content)


async def until(pilot: Pilot[Any], check: Callable[[], bool]) -> None:
    for _ in range(300):
        if check():
            return
        await pilot.pause(0.05)
    raise AssertionError("the setup screen never got there")


async def test_the_url_comes_from_the_enrollment_file_and_the_key_is_hidden(
    tmp_path: Path, make_installer: Factory
) -> None:
    enroll(tmp_path, "https://app.example.com")
    app = SetupApp(make_installer)
    async with app.run_test(size=SIZE) as pilot:
        key = app.query_one("#key", Input)
        await until(pilot, lambda: app.query_one("#url", Input).value != "")
        assert app.query_one("#url", Input).value == "https://app.example.com"
        assert key.password
        await until(pilot, lambda: app.focused is key)  # the one field left to fill


async def test_both_fields_are_needed(make_installer: Factory) -> None:
    app = SetupApp(make_installer)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.click("#install")
        assert "Fill in both" in result_text(app)
        await pilot.press("escape")
    assert app.return_value is None


async def test_a_refused_key_writes_nothing_then_the_right_one_installs(
    backend: BackendProcess, tmp_path: Path, make_installer: Factory
) -> None:
    key = make_user_and_key(backend, "sara")
    enroll(tmp_path, backend.url)
    app = SetupApp(make_installer)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.query_one("#url", Input).value == backend.url)
        await pilot.press(*("wak_" + "x" * 32), "enter")
        await until(pilot, lambda: "refused the API key" in result_text(app))
        assert not (tmp_path / "agent").exists()  # nothing written
        assert "x" * 32 not in result_text(app)

        app.query_one("#key", Input).value = key
        await pilot.click("#install")
        await until(pilot, lambda: result_text(app).startswith("Done."))
        assert (tmp_path / "agent" / "config" / "config.toml").exists()
        assert key not in result_text(app)
        assert app.query_one("#dashboard", Button).display
        await pilot.click("#dashboard")
    assert app.return_value == "dashboard"
    assert app.installed


async def test_a_download_with_an_enrollment_token_installs_without_a_key(
    backend: BackendProcess, tmp_path: Path, make_installer: Factory
) -> None:
    backend.cli("users", "create", "ella", "--password-stdin", input="pw-for-ella-1\n")
    with httpx.Client(base_url=backend.url, timeout=30) as page:
        signed_in = page.post("/api/auth/login", json={"name": "ella", "password": "pw-for-ella-1"})
        assert signed_in.status_code == 200, signed_in.text
        token = page.post("/api/workers/enrollments").json()["token"]
        file = {"backend_url": backend.url, "enrollment_token": token}
        (tmp_path / "exe" / ENROLL_FILE_NAME).write_text(json.dumps(file))
        app = SetupApp(make_installer)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "connects to" in result_text(app))
            assert app.query_one("#url", Input).disabled
            assert app.query_one("#key", Input).value == ""
            await pilot.click("#install")
            await until(pilot, lambda: result_text(app).startswith("Done."))
            assert token not in result_text(app)
        [enrollment] = page.get("/api/workers/enrollments").json()["enrollments"]
    assert enrollment["status"] == "used"
    assert (tmp_path / "agent" / "config" / "config.toml").exists()
    assert not (tmp_path / "exe" / ENROLL_FILE_NAME).exists()  # spent and removed
