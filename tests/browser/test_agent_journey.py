"""The whole journey on real processes: generate a key, see it in the install commands,
start a real agent with it and watch it come online without a reload, submit a command
job from the page and watch its progress, chart and log update, pause and resume it,
cancel it, look at the agent's job history, and revoke the agent: the page shows it
revoked and its polls are refused. Screenshots of each step go to test-artifacts/browser/<test>/."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.browser.audit import audit
from tests.browser.conftest import OpenPage
from tests.browser.support import Shots, Site
from tests.support.agent import agent_env, start_agent, wait_agent
from training_agent import __version__ as agent_version
from training_agent.daemon import EXIT_REVOKED

#: Shown online at most this long after the backend first heard from the agent.
ONLINE_WITHIN_MS = 5_000
AGENT_START_S = 60.0  # the agent's own start-up on a loaded 2-core machine

# 600 steps of 0.1 s with train loss every step and eval loss every 5th: long enough to
# watch, pause, resume and cancel; it pauses between steps when asked (the agent sends
# SIGUSR1 and writes the control file) and stops at once on SIGTERM.
TRAINER = """
import signal, time
from training_agent import report
signal.signal(signal.SIGUSR1, lambda *_: None)
report.capabilities(pause=True)
report.progress(total_steps=600, total_epochs=1)
for step in range(1, 601):
    if report.requested_action() == "pause":
        report.paused()
        print("paused", flush=True)
        while report.requested_action() != "resume":
            time.sleep(0.05)
        report.resumed()
        print("resumed", flush=True)
    time.sleep(0.1)
    loss = 2.0 / (1 + 0.05 * step)
    values = {"train_loss": loss}
    if step % 5 == 0:
        values["eval_loss"] = loss * 1.1
    report.metric(step, step / 600, **values)
    print(f"step {step} loss {loss:.4f}", flush=True)
"""


def generate_key(page: Page, shots: Shots, site: Site) -> str:
    page.get_by_label("Key name").fill("browser-test box")
    page.get_by_role("button", name="Generate API key").click()
    key_box = page.get_by_label("Your new API key")
    expect(key_box).to_have_value(re.compile(r"^wak_[0-9A-Za-z]{32}$"))
    key = key_box.input_value()
    expect(page.locator("#new-key-warning")).to_contain_text("shown only this once")
    expect(page.locator("#keys tbody tr", has_text="browser-test box")).to_contain_text(key[:12])
    commands = page.locator("#setup-commands")
    expect(commands).to_contain_text(f"API_KEY='{key}'")
    expect(commands).to_contain_text(f"BACKEND_URL='{site.url}'")
    expect(page.locator("#setup-backend-url")).to_have_text(site.url)
    page.get_by_role("button", name="Copy key").click()
    assert page.evaluate("navigator.clipboard.readText()") == key
    shots.take(page, "key-and-commands")
    return key


def agent_listed(site: Site, page: Page) -> str:
    """Wait (outside the page) until the backend lists an agent; its id."""
    deadline = time.monotonic() + AGENT_START_S
    while time.monotonic() < deadline:
        agents = page.context.request.get(f"{site.url}/api/training/agents").json()["agents"]
        if agents:
            return str(agents[0]["agent_id"])
        time.sleep(0.1)
    raise AssertionError(f"the agent did not poll within {AGENT_START_S:.0f} s")


def submit_command_job(page: Page, shots: Shots, tmp_path: Path) -> str:
    page.get_by_role("link", name="Jobs", exact=True).click()
    page.get_by_label("Model name").fill("browser-test")
    config = {"type": "command", "command": [sys.executable, "-c", TRAINER]}
    page.get_by_label("Training config (JSON)").fill(json.dumps(config))
    dataset = tmp_path / "train.jsonl"
    dataset.write_text('{"text": "hello"}\n')
    page.get_by_label("Dataset file").set_input_files(dataset)
    shots.take(page, "submit-form")
    page.get_by_role("button", name="Submit job").click()
    expect(page).to_have_url(re.compile(r"/jobs/[0-9a-f-]{36}$"))
    return page.url.rsplit("/", 1)[1]


def chart_points(page: Page) -> int:
    return int(page.locator("#loss-chart").get_attribute("data-train-points") or 0)


def watch_the_job_train(page: Page, shots: Shots) -> None:
    expect(page.locator("#job-status")).to_have_text("running", timeout=30_000)
    expect(page.locator("#loss-chart polyline.train")).to_have_count(1, timeout=15_000)
    expect(page.locator("#loss-chart polyline.eval")).to_have_count(1, timeout=15_000)
    first_points = chart_points(page)
    first_progress = float(page.locator("#job-progress").evaluate("bar => bar.value"))
    expect(page.locator("#job-progress-text")).to_contain_text("of 600")
    expect(page.locator("#job-log")).to_contain_text("step ")
    # Later, without a reload: more points, more progress, a time left.
    page.wait_for_function(
        "n => Number(document.querySelector('#loss-chart').dataset.trainPoints) > n + 5",
        arg=first_points,
    )
    page.wait_for_function(
        "p => document.querySelector('#job-progress').value > p", arg=first_progress
    )
    expect(page.locator("#job-eta")).to_have_text(re.compile(r"^about \d+"))
    expect(page.locator("#job-metrics")).to_contain_text("Train loss")
    assert audit(page) == []
    shots.take(page, "job-running")


def pause_and_resume(page: Page, shots: Shots) -> None:
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#job-status")).to_have_text("paused", timeout=30_000)
    expect(page.get_by_role("button", name="Pause")).to_be_disabled()
    expect(page.locator("#job-log")).to_contain_text("paused")
    shots.take(page, "job-paused")
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#job-status")).to_have_text("running", timeout=30_000)
    expect(page.locator("#job-log")).to_contain_text("resumed")


def test_key_agent_job_and_revocation_end_to_end(
    open_page: OpenPage, site: Site, shots: Shots, tmp_path: Path
) -> None:
    watched = open_page("/workers", permissions=["clipboard-read", "clipboard-write"])
    page = watched.page
    expect(page.locator("#agents-empty")).to_be_visible()
    key = generate_key(page, shots, site)

    home = tmp_path / "agent"
    env = agent_env(home, backend_url=site.url, api_key=key, TRAINING_AGENT_LABELS="cpu,lab-1")
    agent = start_agent(env, "--allow-command-jobs")
    try:
        page.evaluate("window.notReloaded = true")
        agent_id = agent_listed(site, page)
        card = page.locator(f'#agents li[data-agent-id="{agent_id}"]')
        expect(card.locator(".badge")).to_have_text("Online", timeout=ONLINE_WITHIN_MS)
        assert page.evaluate("window.notReloaded") is True
        expect(page.locator("#agents-summary")).to_have_text("1 online")
        expect(card).to_contain_text(socket.gethostname())
        expect(card).to_contain_text("Linux")
        expect(card).to_contain_text(agent_version)
        # An idle agent holds a long poll: connected now, not "last seen 25 s ago".
        expect(card).to_contain_text("Last seenconnected now")
        expect(card).to_contain_text("Labelscpu, lab-1")
        # the real NVML: this machine's GPUs, or in plain words why there are none
        expect(card).to_contain_text(re.compile(r"GPUs(no NVIDIA driver \(\d+ CPUs\)|.+GB)"))
        shots.take(page, "agent-online")

        job_id = submit_command_job(page, shots, tmp_path)
        state = page.context.request.get(f"{site.url}/api/training/local/{job_id}/status")
        assert state.json()["dataset_id"] is not None  # the file went up with the job
        watch_the_job_train(page, shots)

        overview = open_page("/workers").page
        running = overview.locator(f'#agents li[data-agent-id="{agent_id}"] .current-job')
        expect(running.get_by_role("link", name="browser-test")).to_be_visible()
        expect(running.locator("progress")).to_have_attribute("value", re.compile(r"^\d+"))
        assert audit(overview) == []
        shots.take(overview, "agent-running-a-job")

        pause_and_resume(page, shots)
        page.get_by_role("button", name="Cancel job").click()
        expect(page.get_by_role("dialog")).to_contain_text("Cancel this job?")
        page.locator("#confirm-ok").click()
        expect(page.locator("#job-status")).to_have_text("cancelled", timeout=30_000)
        expect(page.get_by_role("button", name="Cancel job")).to_be_disabled()
        expect(page.get_by_role("button", name="Pause")).to_be_disabled()
        shots.take(page, "job-cancelled")

        page.get_by_role("link", name="Training Agent").click()
        card = page.locator(f'#agents li[data-agent-id="{agent_id}"]')
        expect(card).to_contain_text("Runningidle")
        card.get_by_role("link", name="Job history").click()
        row = page.locator(f'#history tr[data-job-id="{job_id}"]')
        expect(row).to_contain_text("browser-test")
        expect(row).to_contain_text("cancelled")
        shots.take(page, "agent-history")

        page.go_back()
        card = page.locator(f'#agents li[data-agent-id="{agent_id}"]')
        card.get_by_role("button", name=re.compile("^Revoke agent")).click()
        expect(page.get_by_role("dialog")).to_contain_text("Its polls are refused")
        page.locator("#confirm-ok").click()
        expect(card.locator(".badge")).to_have_text("Revoked")
        expect(page.locator("#agents-summary")).to_have_text("0 online")
        shots.take(page, "agent-revoked")

        poll = httpx.get(
            f"{site.url}/api/training/agent/poll",
            headers={"Authorization": f"Bearer {key}", "X-Agent-ID": agent_id},
        )
        assert (poll.status_code, poll.json()["code"]) == (403, "AGENT_REVOKED")
        # A new job wakes the agent's held poll; its claim is refused and it stops.
        late = page.context.request.post(
            f"{site.url}/api/training/jobs", data={"config": {"type": "demo"}}
        )
        assert late.status == 201, late.text()
        code, output = wait_agent(agent, timeout_s=60)
        assert code == EXIT_REVOKED, output
        late_job = late.json()["job"]["id"]
        status = page.context.request.get(f"{site.url}/api/training/local/{late_job}/status")
        assert status.json()["status"] == "pending"
    finally:
        stop_agent(agent)


def stop_agent(agent: subprocess.Popen[str]) -> None:
    """Stop the agent if the test ended before it did (terminate, then kill)."""
    if agent.poll() is None:
        agent.terminate()
        try:
            agent.wait(timeout=30)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
