"""No file the agent leaves behind, and nothing it prints, holds the API key or a job token.

A real backend and a real agent run one command job at DEBUG log level. While the job
runs, the test reads the job's token from the outbox (the one place allowed to hold it,
and only until the job's reports are delivered); after the run it reads every file
under the agent's TRAINING_AGENT_HOME (logs, outbox and its journal files, job dirs,
status files) and the agent's output, and finds neither secret anywhere.
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.support.agent import agent_env, start_agent, wait_agent
from tests.support.backend import BackendProcess
from tests.support.e2e import job_json, make_user_and_key, submit

pytestmark = pytest.mark.e2e

# Reports metrics and log lines, then waits for the test to say "go" (so the test can
# look at the outbox while the job is unfinished), then prints a few more lines.
TRAINER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from training_agent import report
    release = Path(sys.argv[1])
    report.progress(total_steps=20, total_epochs=1)
    for step in range(1, 21):
        report.metric(step=step, epoch=step / 20, train_loss=1.0 / step)
        print(f"step {step}", flush=True)
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    print("released", flush=True)
    print("to stderr too", file=sys.stderr, flush=True)
    """
)


def outbox_tokens(outbox: Path) -> list[str]:
    """The job tokens the outbox holds now (none when it does not exist yet)."""
    if not outbox.exists():
        return []
    uri = f"{outbox.as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as db:
        try:
            rows = db.execute("SELECT job_token FROM jobs").fetchall()
        except sqlite3.OperationalError:  # the schema is not there yet
            return []
    return [str(token) for (token,) in rows if token]


def wait_for_token(outbox: Path, timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if tokens := outbox_tokens(outbox):
            return tokens[0]
        time.sleep(0.05)
    raise AssertionError(f"no job token appeared in {outbox} within {timeout_s:.0f}s")


def wait_for_file(directory: Path, name: str, timeout_s: float = 30) -> Path:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := next(directory.rglob(name), None) if directory.exists() else None:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no {name} under {directory} within {timeout_s:.0f}s")


def files_holding(home: Path, secrets: dict[str, str]) -> list[str]:
    """``name in path`` for every file under ``home`` that contains a secret."""
    found = []
    for path in sorted(home.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            found += [
                f"{name} in {path}" for name, value in secrets.items() if value.encode() in data
            ]
    return found


def test_no_file_and_no_output_holds_the_key_or_the_job_token(
    backend: BackendProcess, tmp_path: Path
) -> None:
    key = make_user_and_key(backend, "rita")
    release = tmp_path / "release"
    job_id = submit(
        backend,
        tmp_path,
        "rita",
        {"type": "command", "command": [sys.executable, "-c", TRAINER, str(release)]},
    )
    home = tmp_path / "agent"
    env = agent_env(
        home,
        backend_url=backend.url,
        api_key=key,
        TRAINING_AGENT_ALLOW_COMMAND_JOBS="1",
        TRAINING_AGENT_LOG_LEVEL="DEBUG",
    )
    agent = start_agent(env, "--max-jobs", "1")
    try:
        token = wait_for_token(home / "state" / "outbox.sqlite3")
        # Mid-job, with status.json and the job's journal in place: only the outbox may
        # hold the token, and nothing the key.
        wait_for_file(home / "state" / "jobs", "journal.json")
        during = files_holding(home, {"API key": key, "job token": token})
        assert (home / "state" / "status.json").exists()
    finally:
        release.touch()  # whatever happened, let the job end
    code, output = wait_agent(agent)

    assert [found for found in during if found.startswith("API key")] == []
    outbox = f"job token in {home / 'state' / 'outbox.sqlite3'}"  # or its -wal journal
    assert all(found.startswith(outbox) for found in during), during

    assert code == 0, output
    assert job_json(backend, job_id)["job"]["status"] == "completed"
    assert len(token) >= 32
    secrets = {"API key": key, "job token": token}
    assert [name for name, value in secrets.items() if value in output] == []
    assert outbox_tokens(home / "state" / "outbox.sqlite3") == []  # cleared once delivered
    assert files_holding(home, secrets) == []
    # The check looks where it should: the files are there and hold the job's traces.
    assert (home / "logs" / "agent.log").read_text().count(job_id) >= 2
    assert any(home.rglob("events.jsonl"))
    # ... and the search would see a secret if one were there.
    (home / "data" / "planted.txt").write_text(f"x{token}x")
    assert files_holding(home, secrets) == [f"job token in {home / 'data' / 'planted.txt'}"]
