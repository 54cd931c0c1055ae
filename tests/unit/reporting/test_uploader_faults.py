"""What the uploader does with refusals and failures: drop what is refused for good,
split what is too large, hold a job that cannot be delivered now, and never let one
job's trouble stop the delivery of the others (issue 16)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.support.fake_backend import FakeBackend
from training_agent.api import BackendClient
from training_agent.errors import StateError
from training_agent.jobs import JobStatus
from training_agent.reporting.outbox import Outbox
from training_agent.reporting.uploader import Uploader

STATUS = "PATCH /api/training/local/j1/status"
LOGS = "POST /api/training/local/j1/logs"
METRICS = "POST /api/training/local/metrics"
OK = httpx.Response(200, json={"success": True})


async def no_sleep(_delay: float) -> None:
    await asyncio.sleep(0)


@pytest.fixture
def box(tmp_path: Path) -> Outbox:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.open_job("j1", "token-1")
    outbox.open_job("j2", "token-2")
    return outbox


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def uploader(box: Outbox, client: BackendClient, clock: Clock | None = None) -> Uploader:
    return Uploader(
        outbox=box,
        client=client,
        features=lambda: frozenset({"log_offsets"}),
        sleep=no_sleep,
        rng=lambda: 1.0,
        clock=clock or Clock(),
    )


@pytest.mark.parametrize(
    ("status", "code"),
    [(409, "INVALID_TRANSITION"), (409, "CONFLICT"), (400, "INVALID_REQUEST"), (413, None)],
)
async def test_a_status_refused_for_good_is_dropped_and_delivery_goes_on(
    box: Outbox,
    client: BackendClient,
    backend: FakeBackend,
    caplog: pytest.LogCaptureFixture,
    status: int,
    code: str | None,
) -> None:
    # The regression of issue 16: a 409 other than LOG_GAP fell through to an unbound
    # answer, the uploader died, and no report of any job went out from then on.
    box.append_status("j1", JobStatus.PAUSED)
    box.append_logs("j1", ["after the refused status"])
    box.append_status("j1", JobStatus.COMPLETED)
    box.append_logs("j2", ["the next job"])
    box.append_status("j2", JobStatus.COMPLETED)
    refused = {"error": "Cannot change job status from paused to completed"}
    if code is not None:
        refused["code"] = code
    backend.on(
        STATUS,
        httpx.Response(200, json={"status": "paused"}),
        httpx.Response(status, json=refused),
    )
    delivered: list[str] = []
    up = Uploader(
        outbox=box,
        client=client,
        features=lambda: frozenset({"log_offsets"}),
        sleep=no_sleep,
        on_delivered=delivered.append,
    )
    assert await up.drain_once()

    assert [c["status"] for c in backend.calls(STATUS)] == ["paused", "completed"]
    assert backend.calls(LOGS) == [{"logs": ["after the refused status"], "offset": 0}]
    assert backend.calls("POST /api/training/local/j2/logs") == [
        {"logs": ["the next job"], "offset": 0}
    ]
    assert backend.calls("PATCH /api/training/local/j2/status") == [{"status": "completed"}]
    assert delivered == ["j1", "j2"]
    assert box.unfinished_jobs() == []
    dropped = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 1, caplog.text
    assert "job j1 status completed" in dropped[0].getMessage()


@pytest.mark.parametrize("route", [LOGS, METRICS])
async def test_a_batch_answered_413_goes_in_halves_and_nothing_is_lost(
    box: Outbox, client: BackendClient, backend: FakeBackend, route: str
) -> None:
    box.append_logs("j1", [f"line {n}" for n in range(8)])
    for step in range(1, 9):
        box.append_metric("j1", {"step": step, "epoch": 1.0})

    def small_only(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.read())
        items = body.get("logs") or body.get("metrics")
        return httpx.Response(413, json={"error": "too large"}) if len(items) > 2 else OK

    backend.on(route, small_only)
    assert await uploader(box, client).drain_once()

    key = "logs" if route == LOGS else "metrics"
    accepted = [call[key] for call in backend.calls(route) if len(call[key]) <= 2]
    if route == LOGS:
        assert [line for lines in accepted for line in lines] == [f"line {n}" for n in range(8)]
    else:
        assert [p["step"] for points in accepted for p in points] == list(range(1, 9))
    assert box.pending_logs("j1", limit=10) is None
    assert box.pending_metrics("j1", limit=10) == []


async def test_a_single_line_answered_413_is_dropped_with_one_log_line(
    box: Outbox, client: BackendClient, backend: FakeBackend, caplog: pytest.LogCaptureFixture
) -> None:
    box.append_logs("j1", ["x" * 100])
    backend.on(LOGS, httpx.Response(413, json={"error": "too large"}))
    assert await uploader(box, client).drain_once()
    assert len(backend.calls(LOGS)) == 1
    assert [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()] == [
        "job j1 logs rejected by the backend, dropped: the backend answered 413 to "
        "POST /api/training/local/j1/logs: too large"
    ]


async def test_a_403_holds_the_job_and_its_reports_go_out_later(
    box: Outbox, client: BackendClient, backend: FakeBackend, caplog: pytest.LogCaptureFixture
) -> None:
    box.append_logs("j1", ["kept"])
    box.append_logs("j2", ["other job"])
    backend.on(LOGS, httpx.Response(403, json={"error": "forbidden by a proxy"}), OK)
    clock = Clock()
    up = uploader(box, client, clock)

    assert not await up.drain_once()  # j1 is held; j2 went out regardless
    assert backend.calls("POST /api/training/local/j2/logs") == [
        {"logs": ["other job"], "offset": 0}
    ]
    assert not await up.drain_once()  # still held: no new request
    assert len(backend.calls(LOGS)) == 1
    clock.now += 1.0  # the first back-off is at most 1 s
    assert await up.drain_once()
    assert backend.calls(LOGS) == [{"logs": ["kept"], "offset": 0}] * 2
    assert any(r.getMessage().startswith("job j1 reports failed") for r in caplog.records)
    assert not any("dropped" in r.getMessage() for r in caplog.records)


async def test_a_bug_in_one_jobs_delivery_is_logged_with_its_traceback_and_others_go_on(
    box: Outbox,
    client: BackendClient,
    backend: FakeBackend,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    box.append_logs("j1", ["a"])
    box.append_logs("j2", ["b"])
    real = box.pending_logs
    broken = [True]

    def pending_logs(job_id: str, *, limit: int) -> object:
        if job_id == "j1" and broken[0]:
            raise KeyError("a bug")
        return real(job_id, limit=limit)

    monkeypatch.setattr(box, "pending_logs", pending_logs)
    clock = Clock()
    up = uploader(box, client, clock)
    assert not await up.drain_once()
    assert backend.calls("POST /api/training/local/j2/logs") == [{"logs": ["b"], "offset": 0}]
    failed = [r for r in caplog.records if "a bug: please report it" in r.getMessage()]
    assert len(failed) == 1 and failed[0].exc_info is not None
    broken[0] = False
    clock.now += 1.0
    assert await up.drain_once()
    assert backend.calls(LOGS) == [{"logs": ["a"], "offset": 0}]


async def test_a_revoked_job_token_gives_the_job_up_instead_of_holding_it(
    box: Outbox, client: BackendClient, backend: FakeBackend
) -> None:
    box.append_logs("j1", ["never accepted again"])
    revoked = {"error": "The job token was revoked", "code": "JOB_TOKEN_REVOKED"}
    backend.on(LOGS, httpx.Response(403, json=revoked))
    gone: list[str | None] = []
    up = Uploader(
        outbox=box,
        client=client,
        features=lambda: frozenset({"log_offsets"}),
        sleep=no_sleep,
        on_gone=lambda _job, exc: gone.append(exc.code),
    )
    await up.drain_once()
    assert gone == ["JOB_TOKEN_REVOKED"]
    assert box.is_finished("j1")
    assert len(backend.calls(LOGS)) == 1


async def test_a_delivery_the_full_outbox_cannot_record_is_sent_again_without_a_traceback(
    box: Outbox,
    client: BackendClient,
    backend: FakeBackend,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The backend stored the lines but the full disk refused the ack: the lines stay in
    the outbox and go again (the backend's offsets store them once); a warning, no bug."""
    box.append_logs("j1", ["a"])
    real = box.ack_logs
    full = [True]

    def ack_logs(job_id: str, *, below: int) -> None:
        if full[0]:
            raise StateError("the agent's disk is full") from sqlite3.OperationalError(
                "database or disk is full"
            )
        real(job_id, below=below)

    monkeypatch.setattr(box, "ack_logs", ack_logs)
    clock = Clock()
    up = uploader(box, client, clock)
    assert not await up.drain_once()
    warned = [r for r in caplog.records if "cannot record what was delivered" in r.getMessage()]
    assert len(warned) == 1 and warned[0].exc_info is None
    assert "database or disk is full" in warned[0].getMessage()
    full[0] = False
    clock.now += 2.0
    box.append_status("j1", JobStatus.COMPLETED)
    assert await up.drain_once()
    assert backend.calls(LOGS) == [{"logs": ["a"], "offset": 0}] * 2
