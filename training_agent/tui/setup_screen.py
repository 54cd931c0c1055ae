"""The setup screen of a double-click start: backend URL, API key, check, install, done.

It asks for what ``training-agent install`` would prompt for and hands it to the same
``Installer`` (nothing of the install flow is repeated here): the URL comes prefilled
from ``BACKEND_URL`` or ``training-agent.enroll.json`` next to the executable, the key is
typed into a password field and passed in memory (``InstallOptions.api_key``). The
install (one poll to check the key, then the writes) runs in a worker thread; a refused
key or a bad URL shows the installer's one sentence and nothing is written.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import replace
from typing import ClassVar, TextIO

from pydantic import SecretStr
from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Footer, Input, Label, Static

from training_agent.commands.install import Installer, InstallOptions
from training_agent.errors import TrainingAgentError

InstallerFactory = Callable[[TextIO], Installer]  # an installer that reports to the stream


def installer_for_this_process(out: TextIO) -> Installer:
    return replace(Installer.for_this_process(), out=out)


class SetupApp(App[str | None]):
    """Returns "dashboard" when the user asks for it after a successful install."""

    TITLE = "training-agent setup"
    CSS = """
    Screen { align: center middle; }
    #form { width: 76; height: auto; border: round $primary; padding: 0 2; }
    #form Label { margin-top: 1; }
    #buttons { height: auto; margin-top: 1; }
    #buttons Button { margin-right: 2; }
    #result { margin-top: 1; height: auto; }
    .error { color: $error; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "quit", "Quit")]

    def __init__(self, make_installer: InstallerFactory = installer_for_this_process) -> None:
        super().__init__()
        self._make_installer = make_installer
        self.installed = False
        self.enrolls = False  # the enrollment file holds a token: install trades it for a key
        self.report = ""  # what the installer said, for the terminal after the screen closes

    def compose(self) -> ComposeResult:
        with Vertical(id="form"):
            yield Label("[b]Connect this machine to your training platform[/b]")
            yield Label("Backend URL (the platform's address)")
            yield Input(placeholder="https://app.example.com", id="url")
            yield Label("API key (the platform's Training Agent page shows it)")
            yield Input(placeholder="wak_…", password=True, id="key")
            with Horizontal(id="buttons"):
                yield Button("Check and install", id="install", variant="primary")
                yield Button("Open the dashboard", id="dashboard", variant="success")
                yield Button("Quit", id="quit")
            yield Static(id="result")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#dashboard").display = False
        self.prefill()

    @work(thread=True, exclusive=True, group="prefill")
    def prefill(self) -> None:
        """The URL (and a key) from BACKEND_URL / API_KEY or the enrollment file."""
        try:
            installer = self._make_installer(io.StringIO())
            enroll = installer.enrollment()
        except TrainingAgentError as exc:
            self.call_from_thread(self._show, str(exc), error=True)
            return
        url = installer.environ.get("BACKEND_URL") or (enroll and enroll.backend_url) or ""
        key = installer.environ.get("API_KEY") or (enroll and enroll.api_key) or ""
        self.call_from_thread(self._prefilled, url, key, bool(enroll and enroll.token))

    def _prefilled(self, url: str, key: str, enrolls: bool) -> None:
        url_input, key_input = self.query_one("#url", Input), self.query_one("#key", Input)
        url_input.value, key_input.value = url, key
        self.enrolls = enrolls and not key
        if self.enrolls:  # the download carries a one-time token: no key to paste
            url_input.disabled = True
            key_input.placeholder = "not needed: this download enrolls by itself"
            self._show(f"This download connects to {url} by itself: press Check and install.")
            self.query_one("#install", Button).focus()
            return
        (key_input if url else url_input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "url":
            self.query_one("#key", Input).focus()
        else:
            self.action_install()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "install":
            self.action_install()
        elif event.button.id == "dashboard":
            self.exit("dashboard")
        else:
            self.exit(None)

    def action_install(self) -> None:
        if self.installed:
            return
        url = self.query_one("#url", Input).value.strip()
        key = self.query_one("#key", Input).value.strip()
        if self.enrolls and not key:
            self.query_one("#install", Button).disabled = True
            self._show("Enrolling this machine with the backend…")
            self.install(None, None)
            return
        if not url or not key:
            self._show("Fill in both the backend URL and the API key.", error=True)
            return
        self.query_one("#install", Button).disabled = True
        self._show("Checking the key with the backend…")
        self.install(url, SecretStr(key))

    @work(thread=True, exclusive=True, group="install")
    def install(self, url: str | None, key: SecretStr | None) -> None:
        out = io.StringIO()
        options = InstallOptions(backend_url=url, api_key=key, yes=True)
        try:
            self._make_installer(out).install(options)
        except TrainingAgentError as exc:
            self.call_from_thread(self._failed, f"{out.getvalue()}{exc}")
            return
        self.call_from_thread(self._done, out.getvalue())

    def _failed(self, text: str) -> None:
        self.query_one("#install", Button).disabled = False
        self._show(text.strip(), error=True)

    def _done(self, text: str) -> None:
        self.installed = True
        self.report = text
        self.query_one("#install").display = False
        self.query_one("#dashboard").display = True
        self.query_one("#dashboard").focus()
        self._show(f"Done.\n{text.strip()}")

    def _show(self, text: str, *, error: bool = False) -> None:
        result = self.query_one("#result", Static)
        result.update(Text(text))
        result.set_class(error, "error")
