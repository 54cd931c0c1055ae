"""Step 1 offers the build of the visitor's platform, told from the User-Agent (a Mac's
"Darwin"/"Macintosh" is never taken for Windows), enrolled (with the enrollment file
beside the unchanged executable) or plain, and says when a build is missing."""

from __future__ import annotations

import tarfile

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import OpenPage
from tests.browser.support import ARCHIVES, USER_AGENTS, Shots, Site, write_releases
from tests.e2e.test_enrollment import EXECUTABLE


@pytest.mark.parametrize(("platform", "name"), [("darwin", "macOS"), ("linux", "Linux")])
def test_the_primary_button_downloads_the_build_of_your_platform(
    open_page: OpenPage,
    site: Site,
    shots: Shots,
    tmp_path_factory: pytest.TempPathFactory,
    platform: str,
    name: str,
) -> None:
    page = open_page("/workers", user_agent=USER_AGENTS[platform], accept_downloads=True).page
    button = page.get_by_role("link", name=f"Download for {name}")
    expect(button).to_be_visible()
    shots.take(page, f"download-{platform}", full_page=False)

    with page.expect_download() as download_info:
        button.click()
    enrolled = tmp_path_factory.mktemp("enrolled") / download_info.value.suggested_filename
    download_info.value.save_as(enrolled)
    with page.expect_download() as download_info:
        page.get_by_role("link", name="download without enrollment").click()
    download = download_info.value

    assert enrolled.name == download.suggested_filename == ARCHIVES[platform]
    stem = ARCHIVES[platform].removesuffix(".tar.gz")
    with tarfile.open(enrolled) as archive:
        names = archive.getnames()
        executable = archive.extractfile(f"{stem}/training-agent")
        assert executable is not None and executable.read() == EXECUTABLE
    assert f"{stem}/training-agent.enroll.json" in names
    saved = tmp_path_factory.mktemp("download") / download.suggested_filename
    download.save_as(saved)
    expected = write_releases(tmp_path_factory.mktemp("expected"))[platform]
    assert saved.read_bytes() == expected
    others = page.locator("#downloads li")
    expect(others).to_have_count(2)
    expect(others.filter(has_not_text=name)).to_have_count(2)


def test_windows_is_detected_and_its_missing_build_is_explained(
    open_page: OpenPage, shots: Shots
) -> None:
    page = open_page("/workers", user_agent=USER_AGENTS["windows"]).page

    expect(page.locator("#primary-download")).to_have_text("Your computer runs Windows.")
    expect(page.locator("#primary-missing")).to_contain_text(
        "The training agent 0.2.0 for Windows (amd64) is not on this server yet; its "
        "administrator adds it with: training-backend releases add "
        "training-agent-0.2.0-windows-amd64.zip"
    )
    expect(page.get_by_role("link", name="Download for macOS")).to_have_count(0)
    expect(
        page.get_by_role(
            "link", name="Download training-agent-0.2.0-darwin-arm64.tar.gz", exact=True
        )
    ).to_be_visible()
    expect(
        page.get_by_role(
            "link", name="Download training-agent-0.2.0-darwin-arm64.tar.gz without enrollment"
        )
    ).to_be_visible()
    expect(page.locator("#setup-platform")).to_have_value("windows")
    expect(page.locator("#setup-note")).to_contain_text("not on this server yet")
    # never an empty command box: the administrator's exact command is in it
    expect(page.locator("#setup-commands")).to_contain_text(
        "training-backend releases add training-agent-0.2.0-windows-amd64.zip"
    )
    expect(page.locator("#copy-commands")).to_be_enabled()
    shots.take(page, "download-windows-missing")


def test_a_phone_is_offered_every_platform(open_page: OpenPage) -> None:
    iphone = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
    )
    page = open_page("/workers", user_agent=iphone).page

    expect(page.locator("#primary-download")).to_contain_text(
        "The agent runs on Linux, macOS and Windows"
    )
    expect(page.locator("#downloads li")).to_have_count(3)
