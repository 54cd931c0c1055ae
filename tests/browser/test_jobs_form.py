"""The submit form: a JSON file fills the config, mistakes are one sentence on the page
(the browser's or the server's), and a pending job is cancelled from its page at once."""

from __future__ import annotations

import json
import re
from pathlib import Path

from playwright.sync_api import expect

from tests.browser.conftest import OpenPage
from tests.browser.support import Shots, Site


def test_a_job_from_a_json_file_and_cancelled_while_pending(
    open_page: OpenPage, site: Site, shots: Shots, tmp_path: Path
) -> None:
    # A user of its own: the other tests' agents (same backend) are not this user's.
    watched = open_page("/jobs", as_user=site.another_user("hopper"))
    page = watched.page
    config = page.get_by_label("Training config (JSON)")
    submit = page.get_by_role("button", name="Submit job")

    config.fill('{"type": "demo",')
    submit.click()
    expect(page.get_by_role("alert").first).to_contain_text("The config is not valid JSON")

    watched.allow(r"status of 400")  # the server's refusal below, on purpose
    config.fill(json.dumps({"config": {"type": "demo"}, "max_attempts": 99}))
    submit.click()
    expect(page.locator("#job-error")).to_have_text(
        "Invalid request: max_attempts: input should be less than or equal to 10"
    )
    shots.take(page, "refused")

    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({"model_name": "from-a-file", "config": {"type": "demo"}}))
    page.get_by_label("Or load the config from a JSON file").set_input_files(job_file)
    expect(config).to_have_value(re.compile('"from-a-file"'))
    submit.click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Job from-a-file")
    expect(page.locator("#job-status")).to_have_text("pending")
    # No agent has polled: the job says so rather than "not claimed yet".
    expect(page.locator("#job-agent")).to_have_text("waiting for an agent (none online)")
    page.get_by_role("button", name="Cancel job").click()
    page.locator("#confirm-ok").click()
    expect(page.locator("#job-status")).to_have_text("cancelled")
    shots.take(page, "cancelled-while-pending")

    page.get_by_role("link", name="← Jobs").click()
    row = page.locator("#jobs tbody tr", has_text="from-a-file")
    expect(row.locator('[data-column="status"]')).to_have_text("cancelled")


def test_a_job_that_asks_for_labels_says_what_it_waits_for(
    open_page: OpenPage, shots: Shots
) -> None:
    watched = open_page("/jobs")
    page = watched.page
    page.get_by_label("Training config (JSON)").fill(json.dumps({"type": "demo"}))
    labels = page.get_by_label("Labels")
    submit = page.get_by_role("button", name="Submit job")

    watched.allow(r"status of 400")  # the server's refusal below, on purpose
    labels.fill("A100")
    submit.click()
    expect(page.locator("#job-error")).to_contain_text("'A100' is not a short slug")

    labels.fill("a100, eu-west")
    page.get_by_label("Free GPUs, at least").fill("2")
    submit.click()
    expect(page.locator("#job-status")).to_have_text("pending")
    expect(page.locator("#job-agent")).to_have_text(
        "waiting for an agent with labels a100, eu-west and 2 free GPUs (none online)"
    )
    shots.take(page, "waiting-for-labels")
    page.get_by_role("link", name="← Jobs").click()
    row = page.locator("#jobs tbody tr").first
    expect(row.locator('[data-column="agent"]')).to_contain_text("labels a100, eu-west")
