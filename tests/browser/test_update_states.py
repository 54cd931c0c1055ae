"""The Training Agent page's words for each agent's self-update, from the agents' own
reports: four agents poll the real backend through the agent's client, each with the
``X-Agent-Info`` header the daemon renders (``ResourceMonitor.info_header``) carrying an
``UpdateStatus`` (available, pending, updating, failed with the reason the updater
wrote); the page shows each one's version with the state, and follows a change without
a reload. Any console error fails the test."""

from __future__ import annotations

import asyncio
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from playwright.sync_api import expect

from tests.browser.conftest import MakeContext
from tests.browser.support import Shots, Site, sign_in, watch
from training_agent import __version__
from training_agent.api import BackendClient
from training_agent.identity import AgentIdentity
from training_agent.resources import ResourceMonitor
from training_agent.update.install import UpdateFailed, verify
from training_agent.update.setup import PIP_UPGRADE
from training_agent.update.updater import UpdateState, UpdateStatus

NEW = "9.1.0"
ARCHIVE = f"training-agent-{NEW}-linux-amd64.tar.gz"


def tampered_reason(tmp_path: Path) -> str:
    """What the updater says of a download that does not match its SHA-256."""
    download = tmp_path / ARCHIVE
    download.write_bytes(b"not the release")
    try:
        verify(download, filename=ARCHIVE, sha256="0" * 64, signature="sig", keys=())
    except UpdateFailed as exc:
        return str(exc)
    raise AssertionError("a tampered download was accepted")


def report(url: str, key: str, host: str, status: UpdateStatus, work_dir: Path) -> None:
    """One poll of agent ``host`` carrying ``status``, as the daemon sends it (on a
    thread of its own: Playwright's loop runs in this one)."""
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, _poll(url, key, host, status, work_dir)).result()


async def _poll(url: str, key: str, host: str, status: UpdateStatus, work_dir: Path) -> None:
    identity = AgentIdentity(f"agent_{host.replace('-', '')}00000000", host, "linux", __version__)
    info = ResourceMonitor(work_dir=work_dir).info_header(
        busy_jobs=0, max_jobs=1, update=status.as_info()
    )
    async with BackendClient(base_url=url, api_key=key, identity=identity) as client:
        await client.poll(headers={"X-Agent-Info": info})


def own_site(site: Site) -> tuple[Site, str]:
    """A user of its own (the shared one's page must stay empty for the journey test)
    and an API key of theirs."""
    name = f"upd{secrets.token_hex(3)}"
    _user_id, password = site.backend.cli("users", "create", name).split()
    login = httpx.post(f"{site.url}/api/auth/login", json={"name": name, "password": password})
    login.raise_for_status()
    user = Site(site.backend, name, password, login.json()["token"])
    created = httpx.post(
        f"{site.url}/api/user/api-keys",
        json={"name": "boxes", "scopes": ["training"]},
        headers=user.auth,
    )
    created.raise_for_status()
    return user, str(created.json()["apiKey"]["key"])


def test_the_page_shows_each_agents_update_state_and_why_it_failed(
    make_context: MakeContext, site: Site, shots: Shots, tmp_path: Path
) -> None:
    user, key = own_site(site)
    why = tampered_reason(tmp_path)
    states = {
        "box-available": UpdateStatus(UpdateState.AVAILABLE, NEW, PIP_UPGRADE),
        "box-pending": UpdateStatus(UpdateState.PENDING, NEW),
        "box-updating": UpdateStatus(UpdateState.UPDATING, NEW),
        "box-failed": UpdateStatus(UpdateState.FAILED, NEW, why),
    }
    for host, status in states.items():
        report(user.url, key, host, status, tmp_path)

    context = make_context()
    sign_in(context, user)
    watched = watch(context.new_page())
    page = watched.page
    page.goto(f"{user.url}/workers")
    version = "xpath=.//dt[.='Version']/following-sibling::dd[1]"
    expected = {
        "box-available": f"{__version__} · update available: {NEW} ({PIP_UPGRADE})",
        "box-pending": f"{__version__} · update pending: {NEW}",
        "box-updating": f"{__version__} · updating: {NEW}",
        "box-failed": f"{__version__} · update failed: {NEW} ({why})",
    }
    for host, text in expected.items():
        card = page.locator("#agents li.agent", has_text=host)
        expect(card.locator(version)).to_have_text(text)
    shots.take(page, "update-states")

    # The pending agent moves on; the page follows without a reload.
    page.evaluate("window.notReloaded = true")
    report(user.url, key, "box-pending", states["box-updating"], tmp_path)
    pending = page.locator("#agents li.agent", has_text="box-pending")
    expect(pending.locator(version)).to_have_text(f"{__version__} · updating: {NEW}")
    assert page.evaluate("window.notReloaded") is True
    assert watched.unexpected() == [], "the page logged errors"
