"""A hostile site in the same browser: it cannot sign the visitor in to another account
(login CSRF), and a crafted ``next`` cannot send a visitor there after signing in.

The hostile site is a plain HTTP server on ``localhost`` (another site than the
backend's ``127.0.0.1``), so every request stays on loopback.
"""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import MakeContext, OpenPage
from tests.browser.support import Site
from training_backend.services.sessions import SESSION_COOKIE


class HostileSite:
    """Serves one page, ``page``, at every path; remembers the paths it was asked for."""

    def __init__(self) -> None:
        self.page = "<!doctype html><title>hostile</title><p>hostile site</p>"
        self.visited: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.visited.append(self.path)
                body = site.page.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://localhost:{self.server.server_address[1]}"


@pytest.fixture
def hostile() -> Iterator[HostileSite]:
    site = HostileSite()
    thread = threading.Thread(target=site.server.serve_forever, daemon=True)
    thread.start()
    yield site
    site.server.shutdown()
    site.server.server_close()
    thread.join(timeout=5)


def test_a_hostile_page_cannot_sign_the_visitor_in(
    make_context: MakeContext, site: Site, hostile: HostileSite
) -> None:
    # The classic login CSRF: a text/plain form whose one field, name=value, spells a
    # JSON body with the attacker's own name and password.
    prefix = json.dumps({"name": site.user, "password": site.password})[:-1] + ', "x": "'
    hostile.page = f"""<!doctype html><title>hostile</title>
<form method="post" action="{site.url}/api/auth/login" enctype="text/plain">
<input type="hidden" name="{html.escape(prefix)}" value='"}}'>
</form>
<script>document.forms[0].submit()</script>"""
    context = make_context()
    page = context.new_page()

    with page.expect_navigation(url=f"{site.url}/api/auth/login"):
        page.goto(hostile.url + "/")

    answer = json.loads(page.locator("body").inner_text())
    assert answer["code"] in ("UNSUPPORTED_MEDIA_TYPE", "CROSS_SITE_REQUEST"), answer
    assert "token" not in answer
    assert not [c for c in context.cookies(site.url) if c["name"] == SESSION_COOKIE]
    page.goto(site.url + "/workers")
    expect(page).to_have_url(f"{site.url}/login?next=/workers")


def test_a_tab_in_next_does_not_leave_the_site(
    open_page: OpenPage, site: Site, hostile: HostileSite
) -> None:
    host = hostile.url.removeprefix("http://")
    page = open_page(f"/login?next=/%09/{host}/landed", signed_in=False).page
    page.get_by_label("User name").fill(site.user)
    page.get_by_label("Password").fill(site.password)
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(f"{site.url}/workers")
    assert hostile.visited == []


def test_sign_out_everywhere_ends_the_other_sessions_too(
    make_context: MakeContext, site: Site
) -> None:
    # A user of their own: signing ada out everywhere would end the other tests' session.
    _user_id, password = site.backend.cli("users", "create", "sign-out-test").split()
    tokens = [
        httpx.post(
            f"{site.url}/api/auth/login", json={"name": "sign-out-test", "password": password}
        ).json()["token"]
        for _ in range(2)
    ]
    context = make_context()
    context.add_cookies([{"name": SESSION_COOKIE, "value": tokens[0], "url": site.url}])
    page = context.new_page()
    page.goto(site.url + "/workers")

    page.get_by_role("button", name="Sign out everywhere").click()
    page.get_by_role("dialog").get_by_role("button", name="Sign out everywhere").click()

    expect(page).to_have_url(f"{site.url}/login")
    for token in tokens:
        me = httpx.get(f"{site.url}/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 401
