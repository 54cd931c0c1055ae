"""Zero-copy enrollment on the page, on real processes: click the download button, run
the real installer from the downloaded archive, and watch the "waiting for your
agent…" card give way to the agent's card without a reload. A pending download's token
is listed and can be revoked; its installer is then refused. Screenshots go to
test-artifacts/browser/<test>/.

These tests sign in as their own user, so the agent they enroll and the tokens they make
stay out of the other browser tests' lists.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from tests.browser.audit import audit
from tests.browser.conftest import OpenPage
from tests.browser.support import ARCHIVES, USER_AGENTS, Shots, Site, Watched, sign_in
from tests.e2e.test_enrollment import install, installer_env

PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
ENROLLED_WITHIN_MS = 10_000  # two polls of the page (2 s each) on a loaded machine


@pytest.fixture(scope="module")
def grace(site: Site) -> Site:
    """A second user of the test backend, signed in once."""
    return site.another_user("grace")


def open_as(open_page: OpenPage, user: Site, path: str) -> Watched:
    """``path`` in a Linux browser signed in as ``user``, accepting downloads."""
    options = {"user_agent": USER_AGENTS["linux"], "accept_downloads": True}
    watched = open_page("/login", signed_in=False, **options)
    sign_in(watched.page.context, user)
    watched.page.goto(user.url + path)
    return watched


def download(page: Page, link_name: str, into: Path) -> Path:
    """Click the link, save the download in ``into`` and unpack it; the agent's folder."""
    with page.expect_download() as info:
        page.get_by_role("link", name=link_name, exact=True).click()
    into.mkdir(parents=True)
    archive = into / info.value.suggested_filename
    info.value.save_as(archive)
    subprocess.run(["tar", "-xzf", archive.name], cwd=into, check=True, timeout=60)
    return into / archive.name.removesuffix(".tar.gz")


def token_in(folder: Path) -> str:
    enroll = json.loads((folder / "training-agent.enroll.json").read_text())
    token: str = enroll["enrollment_token"]
    return token


def test_download_install_and_the_waiting_card_becomes_the_agent(
    open_page: OpenPage, grace: Site, shots: Shots, tmp_path: Path
) -> None:
    page = open_as(open_page, grace, "/workers").page
    expect(page.locator("#enrollments-empty")).to_be_visible()
    page.evaluate("window.notReloaded = true")

    folder = download(page, "Download for Linux", tmp_path / "downloads")

    waiting = page.locator("#agents-slot .waiting-card")
    expect(waiting).to_contain_text("Waiting for your agent…")
    expect(waiting).to_contain_text(f"tar -xzf {ARCHIVES['linux']}")
    expect(waiting).to_contain_text("./training-agent install")
    prefix = token_in(folder)[:12]
    expect(waiting.get_by_role("status")).to_contain_text(f"{prefix}…")
    expect(page.locator("#enrollments tbody tr")).to_have_count(1)
    expect(page.locator("#enrollments tbody tr")).to_contain_text(prefix)
    expect(page.locator("#download-status")).to_contain_text("Downloading training-agent-")
    expect(page.locator("#agents-empty")).to_be_hidden()
    assert audit(page) == []
    shots.take(page, "waiting-for-the-agent")
    page.set_viewport_size(PHONE)
    assert audit(page) == []
    shots.take(page, "waiting-on-a-phone")

    installed = install(folder, installer_env(tmp_path))

    assert installed.returncode == 0, installed.stderr
    agent_id = (tmp_path / "agent" / "state" / "agent_id").read_text().strip()
    card = page.locator(f'#agents li[data-agent-id="{agent_id}"]')
    expect(card).to_have_class(re.compile(r"\bjust-enrolled\b"), timeout=ENROLLED_WITHIN_MS)
    expect(card.locator(".badge")).to_have_text("Online")
    expect(waiting).to_have_count(0)
    expect(page.locator("#download-status")).to_contain_text("is connected")
    expect(page.locator("#enrollments-empty")).to_be_visible()
    assert page.evaluate("window.notReloaded") is True
    assert audit(page) == []
    shots.take(page, "agent-enrolled-on-a-phone")
    page.set_viewport_size(DESKTOP)
    shots.take(page, "agent-enrolled")


def test_a_pending_download_is_listed_and_revoked_and_its_installer_refused(
    open_page: OpenPage, grace: Site, shots: Shots, tmp_path: Path
) -> None:
    page = open_as(open_page, grace, "/workers").page
    folder = download(page, f"Download {ARCHIVES['darwin']}", tmp_path / "downloads")
    prefix = token_in(folder)[:12]
    row = page.locator("#enrollments tbody tr", has_text=prefix)
    waiting = page.locator("#agents-slot .waiting-card")
    expect(waiting).to_contain_text("The macOS agent appears here")
    expect(row).to_be_visible()

    row.get_by_role("button", name=f"Revoke enrollment token {prefix}").click()
    expect(page.get_by_role("dialog")).to_contain_text("can no longer connect")
    shots.take(page, "revoke-dialog")
    page.locator("#confirm-ok").click()

    expect(row).to_have_count(0)
    expect(waiting.get_by_role("status")).to_contain_text("was revoked")
    expect(waiting.locator(".badge")).to_have_text("Revoked")
    assert audit(page) == []
    shots.take(page, "revoked")
    refused = install(folder, installer_env(tmp_path))
    assert refused.returncode != 0
    assert "This enrollment token was revoked; download the agent again" in refused.stderr
