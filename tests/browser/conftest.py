"""Fixtures of the browser tests: one backend per run, one Chromium per module, and a fresh
signed-in browser context per test whose pages fail the test on any console error."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Playwright, expect, sync_playwright

from tests.browser.support import Shots, Site, Watched, launch, sign_in, watch, write_releases
from tests.support.backend import start_backend

pytestmark = pytest.mark.e2e

VIEWPORT = {"width": 1280, "height": 900}


# Assertions wait as long as actions (10 s): the suite's pytest workers share two cores
# with training tests, where a page's answer has taken over 5 s (Playwright's default).
expect.set_options(timeout=10_000)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = launch(playwright)
    yield chromium
    chromium.close()


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A backend offering the Linux and macOS builds (no Windows one), and a user."""
    root = tmp_path_factory.mktemp("site")
    write_releases(root / "releases")
    env = {
        "TRAINING_BACKEND_RELEASES_DIR": str(root / "releases"),
        "TRAINING_BACKEND_POLL_INTERVAL_SECONDS": "1",
    }
    with start_backend(root / "backend", env=env) as backend:
        _user_id, password = backend.cli("users", "create", "ada").split()
        login = httpx.post(
            f"{backend.url}/api/auth/login", json={"name": "ada", "password": password}
        )
        login.raise_for_status()
        yield Site(backend, "ada", password, login.json()["token"])


MakeContext = Callable[..., BrowserContext]


@pytest.fixture
def make_context(browser: Browser) -> Iterator[MakeContext]:
    """``make_context(**options)``: a new browser context, closed after the test."""
    made: list[BrowserContext] = []

    def make(**options: object) -> BrowserContext:
        context = browser.new_context(**{"viewport": VIEWPORT, **options})  # type: ignore[arg-type]
        context.set_default_timeout(10_000)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


OpenPage = Callable[..., Watched]


@pytest.fixture
def open_page(make_context: MakeContext, site: Site) -> Iterator[OpenPage]:
    """``open_page(path, signed_in=True, as_user=None, **context_options)``: a watched page
    at ``path``, signed in as the site's user (or as ``as_user``, another ``Site``).

    After the test, any console error or uncaught exception on any of these pages fails it.
    """
    opened: list[Watched] = []

    def open_(
        path: str, *, signed_in: bool = True, as_user: Site | None = None, **options: object
    ) -> Watched:
        context = make_context(**options)
        if signed_in:
            sign_in(context, as_user or site)
        watched = watch(context.new_page())
        opened.append(watched)
        watched.page.goto((as_user or site).url + path)
        return watched

    yield open_
    errors = [error for watched in opened for error in watched.unexpected()]
    assert not errors, "the pages logged errors:\n" + "\n".join(errors)


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    """Screenshots of this test's steps, kept under test-artifacts/browser/<test>."""
    return Shots(request.node.name)
