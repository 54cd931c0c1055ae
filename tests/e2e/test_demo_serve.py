"""``training-agent demo --serve``: the demo's job runs, then the backend stays up and the
printed single-use link signs a browser in on the Training Agent page, where the job's
chart and log are; SIGTERM stops it and removes the demo's files."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def read_until_serving(demo: subprocess.Popen[str], timeout_s: float = 240) -> list[str]:
    assert demo.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = demo.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("Serving;"):
            return lines
    raise AssertionError("the demo never said it was serving:\n" + "\n".join(lines))


def test_demo_serve_prints_a_one_time_sign_in_to_the_page_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # where the demo's files go
    command = [sys.executable, "-m", "training_agent", "demo", "--serve", "--trainer", "logreg"]
    demo = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        lines = read_until_serving(demo)
        printed = "\n".join(lines)
        assert "status   completed" in printed
        link_line = r"^page     (http://127\.0\.0\.1:\d+/login/link/wsl_\S+)$"
        [link] = re.findall(link_line, printed, re.M)
        [job_page] = re.findall(r"^job page (\S+)", printed, re.M)
        base = link.split("/login/")[0]
        with httpx.Client(base_url=base, timeout=30) as browser:
            signed_in = browser.get(link)
            assert signed_in.status_code == 303
            assert signed_in.headers["location"] == "/workers"
            page = browser.get("/workers")
            assert page.status_code == 200 and "Training Agent" in page.text
            assert browser.get(job_page).status_code == 200
            job_id = job_page.rsplit("/", 1)[1]
            points = browser.get(f"/api/training/local/{job_id}/metrics").json()["metrics"]
            assert len(points) > 10  # the chart has a curve to draw
        with httpx.Client(timeout=30) as stranger:
            again = stranger.get(link, follow_redirects=False)
        assert again.status_code == 401
        assert "This sign-in link was already used or has expired" in again.text
        [workdir] = list(tmp_path.glob("training-agent-demo-*"))

        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=60) == 0
        assert not workdir.exists()
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        if demo.stdout is not None:
            demo.stdout.close()
