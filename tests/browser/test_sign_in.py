"""Every page needs a session: sign in (a wrong password says so), land where you were
going, sign out."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import OpenPage
from tests.browser.support import Shots, Site


def test_a_page_asks_to_sign_in_and_comes_back_after(
    open_page: OpenPage, site: Site, shots: Shots
) -> None:
    watched = open_page("/jobs", signed_in=False)
    page = watched.page
    expect(page).to_have_url(re.compile(r"/login\?next=/jobs$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    watched.allow(r"status of 401")  # the wrong password below, refused on purpose
    page.get_by_label("User name").fill(site.user)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Invalid user name or password")
    shots.take(page, "wrong-password")

    page.get_by_label("Password").fill(site.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{site.url}/jobs")
    expect(page.get_by_role("heading", name="Jobs", exact=True)).to_be_visible()
    expect(page.get_by_text(f"Signed in as {site.user}")).to_be_visible()
    shots.take(page, "signed-in")

    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page).to_have_url(f"{site.url}/login")
    page.goto(f"{site.url}/workers")
    expect(page).to_have_url(re.compile(r"/login\?next=/workers$"))


def test_agents_is_another_name_for_the_training_agent_page(
    open_page: OpenPage, site: Site
) -> None:
    page = open_page("/agents").page

    expect(page).to_have_url(f"{site.url}/workers")
    expect(page).to_have_title(re.compile("^Training Agent"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Training Agent")


def test_sign_in_never_sends_you_to_another_site(open_page: OpenPage, site: Site) -> None:
    page = open_page("/login?next=//evil.example/", signed_in=False).page
    page.get_by_label("User name").fill(site.user)
    page.get_by_label("Password").fill(site.password)
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(f"{site.url}/workers")
