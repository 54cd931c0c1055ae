"""What the browser tests share: Chromium from the system, pages that fail on console
errors, screenshots as test artifacts, and a backend with agent archives to offer.

The browser is Debian's ``/usr/bin/chromium`` (``playwright install`` cannot download
one here); ``CHROMIUM`` names another. Without it the tests skip, except under
``CI=true``, where a missing browser is a failure.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Error, Page, Playwright

from tests.e2e.test_enrollment import EXECUTABLE
from tests.support.backend import BackendProcess
from training_backend.services.sessions import SESSION_COOKIE

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]
#: Screenshots of each step land here (gitignored); ``TEST_ARTIFACTS_DIR`` moves them.
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR", REPO / "test-artifacts")) / "browser"
AGENT_VERSION = "0.2.0"
#: The builds the test backend offers: Linux and macOS, and no Windows build, so the page's
#: note for a missing archive is exercised too.
ARCHIVES = {
    "linux": f"training-agent-{AGENT_VERSION}-linux-amd64.tar.gz",
    "darwin": f"training-agent-{AGENT_VERSION}-darwin-arm64.tar.gz",
}
USER_AGENTS = {
    "darwin": (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7_1) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
    ),
    "windows": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
    ),
    "linux": (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
    ),
}


def chromium_path() -> str:
    """The Chromium to drive; skips the test without one (fails it under ``CI=true``)."""
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if Path(found).is_file():
        return found
    message = "no Chromium: apt-get install chromium (or set CHROMIUM=/path/to/chrome)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must run the browser tests")
    pytest.skip(message)


def launch(playwright: Playwright) -> Browser:
    """Headless Chromium with the flags this machine needs."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)


def write_releases(folder: Path) -> dict[str, bytes]:
    """Small stand-in archives in ``folder``; their contents by platform.

    Each holds ``<stem>/training-agent``, a script that runs the installer from this
    source tree, so an enrolled download of it really installs. The bytes are the same
    on every call (the gzip header's time is fixed).
    """
    folder.mkdir(parents=True, exist_ok=True)
    contents = {}
    for platform, name in ARCHIVES.items():
        stem = name.removesuffix(".tar.gz")
        buffer = io.BytesIO()
        with (
            gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as packed,
            tarfile.open(fileobj=packed, mode="w") as archive,
        ):
            info = tarfile.TarInfo(f"{stem}/training-agent")
            info.size, info.mode = len(EXECUTABLE), 0o755
            archive.addfile(info, io.BytesIO(EXECUTABLE))
        contents[platform] = buffer.getvalue()
        (folder / name).write_bytes(contents[platform])
    return contents


@dataclass
class Site:
    """The backend under test and a user who can sign in to it."""

    backend: BackendProcess
    user: str
    password: str
    session: str
    """A session token of the user (signing in costs a password hash: done once)."""

    @property
    def url(self) -> str:
        return self.backend.url

    @property
    def auth(self) -> dict[str, str]:
        """Headers that sign an API call in as the user."""
        return {"Authorization": f"Bearer {self.session}"}

    def another_user(self, name: str) -> Site:
        """The same backend with a new user of its own: no agent or job of the other
        tests (which share the backend and its first user) shows on its pages."""
        _user_id, password = self.backend.cli("users", "create", name).split()
        login = httpx.post(f"{self.url}/api/auth/login", json={"name": name, "password": password})
        login.raise_for_status()
        return Site(self.backend, name, password, login.json()["token"])


@dataclass
class Watched:
    """A page and every console error and uncaught exception it produced."""

    page: Page
    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """Tolerate console errors matching ``pattern`` (a failed request on purpose)."""
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


def watch(page: Page) -> Watched:
    """Record ``page``'s console errors and uncaught exceptions."""
    watched = Watched(page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.errors.append(f"console: {message.text} at {message.location}")

    def on_page_error(error: Error) -> None:
        watched.errors.append(f"uncaught: {error.message}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    return watched


def sign_in(context: BrowserContext, site: Site) -> None:
    """Give ``context`` the site user's session cookie, as the sign-in form would."""
    context.add_cookies([{"name": SESSION_COOKIE, "value": site.session, "url": site.url}])


class Shots:
    """Numbered screenshots of one test's steps under ``ARTIFACTS/<test>``."""

    def __init__(self, test_name: str) -> None:
        self.folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self.count = 0

    def take(self, page: Page, step: str, *, full_page: bool = True) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path
