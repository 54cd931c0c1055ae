"""The job page lists the job's artifacts with size and SHA-256, shows an upload's
progress while it arrives, and its Download button saves the exact bytes."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import httpx
from playwright.sync_api import expect

from tests.backend.artifacts.support import claimed_job, declaration, send_over_http, uploads
from tests.backend.support import bearer
from tests.browser.conftest import OpenPage
from tests.browser.support import Shots, Site
from tests.support.e2e import submit

CONTENT = os.urandom(3 * 1024 * 1024 + 5)


def test_the_job_page_shows_artifacts_and_downloads_one(
    open_page: OpenPage, site: Site, shots: Shots, tmp_path: Path
) -> None:
    backend = site.backend
    key = backend.cli("keys", "create", "--user", site.user, "--scope", "training").strip()
    job_id = submit(backend, tmp_path, site.user, {"type": "command", "command": ["true"]})
    token = claimed_job(site.url, key, job_id)
    send_over_http(site.url, job_id, token, CONTENT, name="adapter.tar")
    arriving = os.urandom(2_000_000)
    declared = httpx.post(
        f"{site.url}{uploads(job_id)}",
        json=declaration(arriving, name="model.safetensors", kind="model"),
        headers=bearer(token),
    ).json()
    httpx.put(
        f"{site.url}{uploads(job_id)}/{declared['artifact_id']}",
        params={"offset": 0},
        content=arriving[:500_000],
        headers=bearer(token),
    ).raise_for_status()

    page = open_page(f"/jobs/{job_id}", accept_downloads=True).page
    done = page.locator("#artifacts tr", has_text="adapter.tar")
    uploading = page.locator("#artifacts tr", has_text="model.safetensors")
    expect(done).to_contain_text("3.15 MB")
    expect(done).to_contain_text(hashlib.sha256(CONTENT).hexdigest())
    expect(uploading).to_contain_text("uploading: 500 kB of 2.00 MB")
    expect(uploading.get_by_role("progressbar")).to_have_attribute("value", "25")
    expect(uploading.get_by_role("link")).to_have_count(0)
    shots.take(page, "artifacts")

    with page.expect_download() as download_info:
        done.get_by_role("link", name="Download adapter.tar").click()
    saved = tmp_path / "saved.tar"
    download_info.value.save_as(saved)

    httpx.put(
        f"{site.url}{uploads(job_id)}/{declared['artifact_id']}",
        params={"offset": 500_000},
        content=arriving[500_000:1_000_000],
        headers=bearer(token),
    ).raise_for_status()

    assert download_info.value.suggested_filename == "adapter.tar"
    assert saved.read_bytes() == CONTENT
    expect(uploading).to_contain_text("uploading: 1.00 MB of 2.00 MB, ")
    expect(uploading).to_contain_text(re.compile(r"[0-9.]+ [kM]?B/s, about .+ left"))
