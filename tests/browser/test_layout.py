"""Every page at phone and desktop width: labelled controls, named buttons, AA contrast,
no sideways scrolling, and a visible keyboard focus."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.audit import audit
from tests.browser.conftest import MakeContext, OpenPage
from tests.browser.support import Shots, Site

PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def cancelled_job(site: Site) -> str:
    """A job of the site's user, cancelled at once (so no agent of another test takes it)."""
    job = {"model_name": "layout", "config": {"type": "demo"}}
    created = httpx.post(f"{site.url}/api/training/jobs", json=job, headers=site.auth)
    job_id = str(created.json()["job"]["id"])
    cancel = {"action": "cancel"}
    answer = httpx.post(
        f"{site.url}/api/training/local/{job_id}/control", json=cancel, headers=site.auth
    )
    assert answer.json()["status"] == "cancelled", answer.text
    return job_id


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
@pytest.mark.parametrize("path", ["/login", "/workers", "/jobs", "/jobs/{job}"])
def test_pages_pass_the_audit(
    open_page: OpenPage, shots: Shots, cancelled_job: str, viewport: dict[str, int], path: str
) -> None:
    signed_in = path != "/login"
    page = open_page(path.format(job=cancelled_job), signed_in=signed_in, viewport=viewport).page
    expect(page.locator("main h1")).to_be_visible()
    page.wait_for_load_state("networkidle")

    assert audit(page) == []
    shots.take(page, "page")


def test_keyboard_focus_is_visible(open_page: OpenPage) -> None:
    page = open_page("/workers").page
    page.keyboard.press("Tab")

    focused = page.locator(":focus")
    expect(focused).to_have_text("Skip to content")
    expect(focused).to_be_in_viewport()
    outline = focused.evaluate("el => getComputedStyle(el).outlineStyle")
    assert outline == "solid"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"


def test_the_audit_finds_what_it_looks_for(make_context: MakeContext) -> None:
    page = make_context().new_page()  # about:blank: no CSP, so inline styles apply
    page.set_content(
        '<input id="x"><button></button><p style="color:#aaa;background:#fff">faint</p>'
        '<div style="width:3000px">wide</div>'
    )

    problems = audit(page)

    assert [problem.split(":")[0] for problem in problems] == [
        "control without a label",
        "button or link without a name",
        "contrast 2.32",
        "the page is 1728px wider than the window",  # 3000 + 8 body margin - 1280
    ]
