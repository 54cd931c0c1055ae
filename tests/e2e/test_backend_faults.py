"""The backend's own faults (issue 16): its PostgreSQL restarted mid-job, the backend
process SIGKILLed mid-claim and mid-batch and started again, the disk under its SQLite
file full. Each time the real agent delivers every line and point of its job exactly
once, in order, and the job ends completed.

While the database is down the backend answers 503 ``DATABASE_UNAVAILABLE`` with
``Retry-After``; while its disk is full 507 ``INSUFFICIENT_STORAGE``; each time with a
sentence, and nothing of a refused request is stored (``tests/backend/
test_database_faults.py`` checks the answers one by one).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.backend import BackendProcess, start_backend
from tests.support.e2e import Owner, make_user_and_key, wait_until
from tests.support.fault_proxy import FaultProxy, start_fault_proxy
from tests.support.job_faults import (
    OUTAGE_S,
    STEPS,
    WAIT_S,
    assert_delivered_once,
    fill,
    small_file_system,
    start_agent,
    stored_steps,
    submit_job,
)
from training_backend.db.faults import DATABASE_RETRY_AFTER_S

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]


# --- PostgreSQL restarted --------------------------------------------------------------


def postgres(action: str, directory: Path) -> str:
    done = subprocess.run(
        [str(ROOT / "scripts" / "postgres"), action, str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode == 3:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the PostgreSQL restart: {done.stderr}")
        pytest.skip(done.stderr.strip())
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def postgres_url() -> Iterator[tuple[str, Path]]:
    # Not under pytest's own folder: another pytest run on the machine makes its parent
    # owner-only again, and the server runs as the postgres user when we are root.
    directory = Path(tempfile.mkdtemp(prefix="pg-restart-"))
    try:
        yield postgres("start", directory / "pg"), directory / "pg"
    finally:
        postgres("stop", directory / "pg")
        shutil.rmtree(directory, ignore_errors=True)


def test_postgresql_restarted_mid_job_loses_nothing(
    tmp_path: Path, postgres_url: tuple[str, Path]
) -> None:
    url, directory = postgres_url
    with start_backend(tmp_path / "backend", database_url=url) as backend:
        owner = Owner(backend, make_user_and_key(backend, "pia"))
        job_id = submit_job(owner)
        agent = start_agent(owner, tmp_path, backend.url)
        try:
            stored_steps(owner, job_id, 10)
            postgres("stop", directory)
            status_url = f"{backend.url}/api/training/local/{job_id}/status"
            down = httpx.get(status_url, headers=owner.headers)
            time.sleep(OUTAGE_S)  # the agent's reports meet the outage
            postgres("resume", directory)
        except BaseException:
            agent.kill()
            raise
        assert down.status_code == 503, down.text
        assert down.headers["retry-after"] == str(DATABASE_RETRY_AFTER_S)
        assert down.json()["code"] == "DATABASE_UNAVAILABLE"
        assert down.json()["error"].startswith("The server's database is unavailable")
        output = assert_delivered_once(owner, job_id, agent, tmp_path)
        assert "the database is unavailable" in backend.server_log()
        assert "the backend answered 503" in output, output


# --- the backend SIGKILLed -------------------------------------------------------------

HOLD_S = 1.5  # the proxy holds the request the backend will die with


def _hold(paths: str, every: int) -> dict[str, object]:
    fault = {"kind": "delay", "min_s": HOLD_S, "max_s": HOLD_S}
    return {"paths": paths, "every": every, "limit": 1, "faults": [fault]}


KILL_SCRIPT = {
    "seed": 16,
    "rules": [
        _hold("^/api/training/agent/claim/", 1),
        _hold(r"^/api/training/local/(metrics|[^/]+/logs)$", 4),
    ],
}


def kill_with_request_inside(backend: BackendProcess, proxy: FaultProxy, held: int) -> None:
    """Once the proxy holds its ``held``-th request: freeze the backend, let the request
    reach it, SIGKILL it and start it again on the same database and port."""
    wait_until(lambda: len(proxy.injected()) >= held, f"request {held} held", WAIT_S)
    backend.process.send_signal(signal.SIGSTOP)
    time.sleep(HOLD_S + 0.5)  # the proxy forwards it to the frozen backend
    backend.process.send_signal(signal.SIGKILL)
    backend.process.wait()
    backend.start_again()


def test_backend_killed_mid_claim_and_mid_batch_loses_nothing(tmp_path: Path) -> None:
    with start_backend(tmp_path / "backend") as backend:
        owner = Owner(backend, make_user_and_key(backend, "kit"))
        job_id = submit_job(owner)
        with start_fault_proxy(tmp_path / "proxy", backend.url, KILL_SCRIPT) as proxy:
            agent = start_agent(owner, tmp_path, proxy.url)
            try:
                kill_with_request_inside(backend, proxy, 1)  # the claim
                kill_with_request_inside(backend, proxy, 2)  # a batch of lines or points
            except BaseException:
                agent.kill()
                raise
            assert_delivered_once(owner, job_id, agent, tmp_path)
        paths = [fault["path"] for fault in proxy.injected()]
        assert paths[0].startswith("/api/training/agent/claim/"), paths


# --- the backend's disk full -----------------------------------------------------------


def test_backend_disk_full_answers_507_and_loses_nothing(tmp_path: Path) -> None:
    with small_file_system(tmp_path / "small") as small:
        database_url = f"sqlite:///{small / 'backend.sqlite3'}"
        with start_backend(tmp_path / "backend", database_url=database_url) as backend:
            owner = Owner(backend, make_user_and_key(backend, "dee"))
            job_id = submit_job(owner)
            agent = start_agent(owner, tmp_path, backend.url)
            try:
                stored_steps(owner, job_id, 10)
                filler = fill(small)
                wait_until(
                    lambda: "the database's disk is full" in backend.server_log(),
                    "a write refused for the full disk",
                    WAIT_S,
                )
                before = len(owner.steps(job_id))  # reading still works
                time.sleep(OUTAGE_S)
                filler.unlink()
            except BaseException:
                agent.kill()
                raise
            assert before < STEPS
            output = assert_delivered_once(owner, job_id, agent, tmp_path)
            assert "the backend answered 507" in output, output  # met, retried, stored once
