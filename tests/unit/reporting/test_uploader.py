"""The uploader delivers the outbox in order, once, and never a terminal status early."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.support.fake_backend import FakeBackend
from training_agent.api import BackendClient
from training_agent.jobs import JobStatus
from training_agent.reporting.outbox import Outbox
from training_agent.reporting.uploader import Uploader

STATUS = "PATCH /api/training/local/j1/status"
LOGS = "POST /api/training/local/j1/logs"
METRICS = "POST /api/training/local/metrics"


async def no_sleep(_delay: float) -> None:
    await asyncio.sleep(0)


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    box = Outbox(tmp_path / "outbox.sqlite3")
    box.open_job("j1", "token-1")
    return box


def uploader(outbox: Outbox, client: BackendClient, *features: str) -> Uploader:
    return Uploader(
        outbox=outbox, client=client, features=lambda: frozenset(features), sleep=no_sleep
    )


def fill(outbox: Outbox) -> None:
    outbox.append_status("j1", JobStatus.RUNNING)
    outbox.append_status("j1", JobStatus.RUNNING, details={"total_steps": 2})
    outbox.append_logs("j1", ["a", "b"])
    outbox.append_metric("j1", {"step": 1, "epoch": 0.5, "train_loss": 2.0})
    outbox.append_metric("j1", {"step": 2, "epoch": 1.0, "train_loss": 1.0})
    outbox.append_status("j1", JobStatus.COMPLETED, details={"exit_code": 0})


async def test_order_and_extensions(
    outbox: Outbox, client: BackendClient, backend: FakeBackend
) -> None:
    fill(outbox)
    assert await uploader(outbox, client, "log_offsets", "job_details").drain_once()

    order = [f"{r.method} {r.url.path}" for r in backend.requests]
    assert order == [STATUS, STATUS, LOGS, METRICS, STATUS]
    assert [c["status"] for c in backend.calls(STATUS)] == ["running", "running", "completed"]
    assert backend.calls(STATUS)[1]["total_steps"] == 2
    assert backend.calls(STATUS)[2]["exit_code"] == 0
    assert backend.calls(LOGS) == [{"logs": ["a", "b"], "offset": 0}]
    assert [p["step"] for p in backend.calls(METRICS)[0]["metrics"]] == [1, 2]
    assert all(r.headers["authorization"] == "Bearer token-1" for r in backend.requests)
    assert outbox.is_finished("j1")


async def test_v1_backend_gets_plain_protocol(
    outbox: Outbox, client: BackendClient, backend: FakeBackend
) -> None:
    fill(outbox)
    assert await uploader(outbox, client).drain_once()

    assert backend.calls(STATUS) == [{"status": "running"}, {"status": "completed"}]
    assert backend.calls(LOGS) == [{"logs": ["a", "b"]}]


async def test_server_errors_are_retried_without_duplicates(
    outbox: Outbox, client: BackendClient, backend: FakeBackend
) -> None:
    outbox.append_logs("j1", ["x", "y"])
    backend.on(
        LOGS,
        httpx.Response(503, json={"error": "busy"}),
        httpx.Response(200, json={"success": True}),
    )
    assert await uploader(outbox, client, "log_offsets").drain_once()
    assert backend.calls(LOGS) == [{"logs": ["x", "y"], "offset": 0}] * 2
    assert outbox.pending_logs("j1", limit=10) is None


async def test_a_rejected_batch_is_dropped_and_the_status_still_goes(
    outbox: Outbox, client: BackendClient, backend: FakeBackend
) -> None:
    outbox.append_logs("j1", ["x"])
    outbox.append_status("j1", JobStatus.FAILED, error="boom")
    backend.on(LOGS, httpx.Response(400, json={"error": "bad", "code": "INVALID_REQUEST"}))
    up = uploader(outbox, client)
    await up.drain_once()
    # The rejected batch is dropped (it would be rejected forever), then the status goes.
    assert backend.calls(STATUS) == [{"status": "failed", "error": "boom"}]
    assert outbox.is_finished("j1")


async def test_a_job_the_backend_forgot_is_abandoned(
    outbox: Outbox,
    client: BackendClient,
    backend: FakeBackend,
    caplog: pytest.LogCaptureFixture,
) -> None:
    outbox.append_logs("j1", ["x"])
    outbox.append_logs("j1", ["y"])
    backend.on(LOGS, httpx.Response(404, json={"error": "Job not found", "code": "JOB_NOT_FOUND"}))
    await uploader(outbox, client).drain_once()
    assert outbox.is_finished("j1")
    assert len(backend.calls(LOGS)) == 1
    assert any("reports dropped" in r.getMessage() for r in caplog.records)


async def test_wait_delivered_returns_after_the_terminal_status(
    outbox: Outbox, client: BackendClient, backend: FakeBackend
) -> None:
    up = uploader(outbox, client)
    runner = asyncio.create_task(up.run())
    try:
        outbox.append_logs("j1", ["x"])
        outbox.append_status("j1", JobStatus.COMPLETED)
        up.wake()
        await asyncio.wait_for(up.wait_delivered("j1"), 5)
    finally:
        runner.cancel()
    assert backend.calls(STATUS) == [{"status": "completed"}]


@pytest.mark.parametrize(("expected", "resent"), [(4, []), (0, [{"logs": ["c", "d"]}])])
async def test_log_gap_is_mended(
    outbox: Outbox,
    client: BackendClient,
    backend: FakeBackend,
    expected: int,
    resent: list[dict[str, object]],
) -> None:
    outbox.append_logs("j1", ["a", "b", "c", "d"])
    outbox.ack_logs("j1", below=2)  # a and b went out before a restart
    gap = httpx.Response(409, json={"error": "gap", "code": "LOG_GAP", "expected_offset": expected})
    backend.on(LOGS, gap, httpx.Response(200, json={"success": True}))
    await uploader(outbox, client, "log_offsets").drain_once()
    assert backend.calls(LOGS) == [{"logs": ["c", "d"], "offset": 2}, *resent]
    assert outbox.pending_logs("j1", limit=10) is None


async def test_control_on_any_report_answer_is_passed_on(
    outbox: Outbox, client: BackendClient, backend: FakeBackend
) -> None:
    outbox.append_status("j1", JobStatus.RUNNING)
    outbox.append_logs("j1", ["x"])
    backend.on(STATUS, httpx.Response(200, json={"control": None}))
    backend.on(LOGS, httpx.Response(200, json={"control": "cancel"}))
    controls: list[tuple[str, str]] = []
    up = Uploader(
        outbox=outbox,
        client=client,
        features=lambda: frozenset(),
        sleep=no_sleep,
        on_control=lambda job, control: controls.append((job, control)),
    )
    await up.drain_once()
    assert controls == [("j1", "cancel")]


async def test_a_lost_lease_is_reported_once_and_the_job_delivered(
    outbox: Outbox, client: BackendClient, backend: FakeBackend
) -> None:
    outbox.append_logs("j1", ["x"])
    backend.on(LOGS, httpx.Response(409, json={"error": "lease expired", "code": "LEASE_EXPIRED"}))
    gone: list[tuple[str, str | None]] = []
    delivered: list[str] = []
    up = Uploader(
        outbox=outbox,
        client=client,
        features=lambda: frozenset({"log_offsets"}),
        sleep=no_sleep,
        on_gone=lambda job, exc: gone.append((job, exc.code)),
        on_delivered=delivered.append,
    )
    await up.drain_once()
    outbox.append_logs("j1", ["after the loss"])  # dropped: the job is finished here
    await up.drain_once()
    assert gone == [("j1", "LEASE_EXPIRED")]
    assert delivered == ["j1"]
    assert len(backend.calls(LOGS)) == 1


async def test_a_revoked_job_token_drops_the_jobs_reports_with_one_line(
    outbox: Outbox,
    client: BackendClient,
    backend: FakeBackend,
    caplog: pytest.LogCaptureFixture,
) -> None:
    outbox.append_logs("j1", ["a", "b"])
    revoked = {"error": "This job's token was revoked", "code": "JOB_TOKEN_REVOKED"}
    backend.on(LOGS, httpx.Response(403, json=revoked))
    gone: list[tuple[str, str | None]] = []
    up = Uploader(
        outbox=outbox,
        client=client,
        features=lambda: frozenset({"log_offsets"}),
        sleep=no_sleep,
        on_gone=lambda job, exc: gone.append((job, exc.code)),
    )
    await up.drain_once()
    await up.drain_once()
    assert gone == [("j1", "JOB_TOKEN_REVOKED")]
    assert len(backend.calls(LOGS)) == 1  # not retried, nothing sent after
    dropped = [r for r in caplog.records if "reports dropped" in r.getMessage()]
    assert len(dropped) == 1


async def test_nothing_is_sent_before_the_backends_extensions_are_known(
    outbox: Outbox, client: BackendClient, backend: FakeBackend
) -> None:
    fill(outbox)
    known: frozenset[str] | None = None
    up = Uploader(outbox=outbox, client=client, features=lambda: known, sleep=no_sleep)
    assert not await up.drain_once()
    assert backend.requests == []
    known = frozenset({"log_offsets"})
    assert await up.drain_once()
    assert backend.calls(LOGS) == [{"logs": ["a", "b"], "offset": 0}]


async def test_a_pass_sends_what_was_there_and_leaves_newer_lines_for_the_next(
    outbox: Outbox, client: BackendClient, backend: FakeBackend
) -> None:
    outbox.append_logs("j1", ["a", "b"])

    def meanwhile(_request: httpx.Request) -> httpx.Response:
        outbox.append_logs("j1", ["c"])  # a line the trainer printed during the request
        return httpx.Response(200, json={})

    backend.on(LOGS, meanwhile, httpx.Response(200, json={}))
    up = uploader(outbox, client, "log_offsets")
    assert not await up.drain_once()  # "c" is still there
    assert backend.calls(LOGS) == [{"logs": ["a", "b"], "offset": 0}]
    assert await up.drain_once()
    assert backend.calls(LOGS)[1] == {"logs": ["c"], "offset": 2}


async def test_passes_of_a_busy_job_are_a_batch_window_apart(
    outbox: Outbox, client: BackendClient, backend: FakeBackend
) -> None:
    now = [100.0]
    slept: list[float] = []
    woken = asyncio.Event()

    async def sleep(delay: float) -> None:
        slept.append(delay)
        woken.set()
        await asyncio.sleep(0)

    up = Uploader(
        outbox=outbox,
        client=client,
        features=lambda: frozenset(),
        sleep=sleep,
        batch_window_s=1.0,
        clock=lambda: now[0],
    )
    task = asyncio.create_task(up.run())
    await asyncio.sleep(0.01)  # the first pass ran at t=100
    now[0] = 100.3
    outbox.append_logs("j1", ["a"])
    up.wake()
    await asyncio.wait_for(woken.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert slept[0] == pytest.approx(0.7)  # the rest of the window, then the next pass
