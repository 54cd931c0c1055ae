"""The job page draws a job's extra series (feature ``metrics_extra``): a checkbox per
series the trainer reported, one chart per chosen series, names shown as plain text."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from tests.browser.conftest import OpenPage
from tests.browser.support import Site

AGENT = {"X-Agent-ID": "agent_extra_series_01"}
ODD_NAME = "<b>odd</b>"


def running_job_with_series(site: Site) -> str:
    """A job claimed by a stand-in agent that reported three steps with extra series."""
    key = site.backend.cli("keys", "create", "--user", site.user, "--scope", "training").strip()
    agent = {"Authorization": f"Bearer {key}"} | AGENT
    with httpx.Client(base_url=site.url) as http:
        job = http.post("/api/training/jobs", json={"config": {"type": "demo"}}, headers=site.auth)
        job_id: str = job.json()["job"]["id"]
        claim = http.post(f"/api/training/agent/claim/{job_id}", headers=agent)
        token = {"Authorization": f"Bearer {claim.json()['job_token']}"}
        http.patch(
            f"/api/training/local/{job_id}/status", json={"status": "running"}, headers=token
        )
        points = [
            {
                "step": step,
                "epoch": step / 3,
                "train_loss": 1.0 / step,
                "extra": {
                    "kl": 0.1 * step,
                    "rewards/margins": 0.2 * step,
                    "reward": step,
                    ODD_NAME: 1,
                },
            }
            for step in (1, 2, 3)
        ]
        answer = http.post(
            "/api/training/local/metrics", json={"job_id": job_id, "metrics": points}, headers=token
        )
        answer.raise_for_status()
    return job_id


def test_chosen_series_are_drawn_one_chart_each(site: Site, open_page: OpenPage) -> None:
    job_id = running_job_with_series(site)
    page = open_page(f"/jobs/{job_id}").page
    section = page.locator("#extra-series")
    expect(section).to_be_visible()
    choices = section.locator(".series-choice")
    # the preferred series first, the others by name; the odd name stays text
    expect(choices).to_have_text(["rewards/margins", "reward", "kl", ODD_NAME], use_inner_text=True)
    assert section.locator("b").count() == 0
    charts = section.locator("svg[data-series]")
    expect(charts).to_have_count(2)
    assert [charts.nth(i).get_attribute("data-series") for i in range(2)] == [
        "rewards/margins",
        "reward",
    ]
    assert charts.first.get_attribute("data-points") == "3"
    section.get_by_role("checkbox", name="kl", exact=True).check()
    expect(charts).to_have_count(3)
    section.get_by_role("checkbox", name="rewards/margins", exact=True).uncheck()
    expect(charts).to_have_count(2)
    expect(section.locator('svg[data-series="kl"] polyline')).to_have_count(1)
