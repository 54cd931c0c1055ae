"""AgentState: reports become a JSON-ready snapshot; watchers see every change, coalesced."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncGenerator
from typing import cast

from training_agent.status.state import (
    KEPT_JOB_DETAILS,
    AgentState,
    JobViewStatus,
    MetricHistory,
)


def make_state() -> AgentState:
    return AgentState(agent_id="agent_0123456789abcdef", version="1.2.3", backend_url="http://b")


def test_snapshot_of_a_running_job_is_json_with_progress_and_eta() -> None:
    state = make_state()
    state.poll_succeeded(latency_s=0.012, features=frozenset({"long_poll"}), long_poll=True)
    state.job_started("job-1", model_name="tiny")
    state.jobs["job-1"].started_at -= 100.0  # started 100 s ago
    state.job_progress("job-1", total_steps=400, total_epochs=2)
    state.job_metric("job-1", {"step": 100, "epoch": 0.5, "train_loss": 1.5})

    snapshot = json.loads(json.dumps(state.snapshot()))

    assert snapshot["agent_id"] == "agent_0123456789abcdef"
    assert snapshot["connection"]["state"] == "connected"
    assert snapshot["connection"]["long_poll"] is True
    assert snapshot["connection"]["last_poll_latency_s"] == 0.012
    [job] = snapshot["jobs"]
    assert (job["step"], job["total_steps"], job["epoch"]) == (100, 400, 0.5)
    assert job["last_metrics"]["train_loss"] == 1.5
    assert job["progress"] == 0.25
    assert 299 <= job["eta_s"] <= 301  # 1 s per step so far, 300 steps left
    assert snapshot["counters"] == {"polls": 1, "poll_errors": 0, "jobs_finished": {}}


def test_a_finished_job_moves_to_recent_and_is_counted() -> None:
    state = make_state()
    state.job_started("job-1", model_name=None)
    state.job_finished("job-1", status=JobViewStatus.FAILED, error="exit code 3")
    state.job_finished("job-1", status=JobViewStatus.FAILED, error="twice")  # unknown now: ignored

    snapshot = state.snapshot()
    assert snapshot["jobs"] == []
    assert [(j["id"], j["status"], j["error"]) for j in snapshot["recent_jobs"]] == [
        ("job-1", "failed", "exit code 3")
    ]
    assert snapshot["recent_jobs"][0]["eta_s"] is None
    assert state.jobs_finished == {"failed": 1}


def test_a_held_long_poll_shows_while_it_waits() -> None:
    state = make_state()
    state.poll_succeeded(latency_s=0.01, features=frozenset({"long_poll"}))
    state.poll_started(long_poll=True)
    connection = state.snapshot()["connection"]
    assert connection["long_poll"] is True
    assert connection["poll_started_at"] is not None
    assert connection["last_poll_latency_s"] == 0.01  # the last answered poll's

    state.poll_succeeded(latency_s=30.0, features=frozenset({"long_poll"}), long_poll=True)
    assert state.snapshot()["connection"]["poll_started_at"] is None
    state.poll_started(long_poll=False)  # busy: a plain peek
    assert state.snapshot()["connection"]["long_poll"] is False


def test_poll_failures_are_counted_with_the_retry_time() -> None:
    state = make_state()
    state.poll_failed(state="unreachable", reason="connection refused", retry_in_s=30.0)
    connection = state.snapshot()["connection"]
    assert connection["state"] == "unreachable"
    assert connection["reason"] == "connection refused"
    assert connection["next_retry_at"] > state.snapshot()["now"] + 29
    assert (state.polls_total, state.poll_errors_total) == (1, 1)


def test_log_tail_keeps_the_last_lines_with_their_numbers() -> None:
    state = make_state()
    state.job_started("job-1", model_name=None)
    for i in range(1000):
        state.job_log("job-1", f"line {i}")
    first, lines = state.log_tail("job-1", 3) or (None, [])
    assert (first, lines) == (997, ["line 997", "line 998", "line 999"])
    assert state.log_tail("nope") is None


def test_metric_history_thins_evenly_and_spans_the_whole_run() -> None:
    history = MetricHistory(limit=100)
    for step in range(1, 10_001):
        history.add({"step": step})
    steps = [p["step"] for p in history.points]
    assert len(steps) < 100
    assert steps[0] == 1
    assert steps[-1] > 9_800  # still reaches the end of the run
    gaps = {b - a for a, b in itertools.pairwise(steps)}
    assert len(gaps) == 1  # evenly spaced


def test_details_of_old_finished_jobs_are_forgotten() -> None:
    state = make_state()
    for i in range(KEPT_JOB_DETAILS + 3):
        state.job_started(f"job-{i}", model_name=None)
        state.job_log(f"job-{i}", "x")
        state.job_finished(f"job-{i}", status=JobViewStatus.COMPLETED, error=None)
    state.job_started("last", model_name=None)
    assert state.log_tail("job-0") is None
    assert state.history("job-0") is None
    assert state.log_tail(f"job-{KEPT_JOB_DETAILS + 2}") == (0, ["x"])
    assert state.job("job-0") is not None  # still listed among the recent jobs


async def test_a_watcher_gets_every_change_since_its_last_look_at_once() -> None:
    state = make_state()
    with state.watch() as watcher:
        state.job_started("job-1", model_name=None)
        for step in range(1, 501):
            state.job_metric("job-1", {"step": step, "epoch": 0.0})
        state.job_log("job-1", "a line")

        changes = await asyncio.wait_for(watcher.next(), 5)

        assert changes.kinds == {"job", "metric", "log"}
        assert [p["step"] for p in changes.points["job-1"]] == list(range(1, 501))
        assert changes.lines == {"job-1": ["a line"]}
        assert not watcher.pending()
        assert watcher.take().kinds == set()


async def test_a_watcher_that_falls_behind_drops_the_oldest_and_says_how_many() -> None:
    state = make_state()
    state.job_started("job-1", model_name=None)
    with state.watch(backlog=100) as watcher:
        for step in range(1, 1001):
            state.job_metric("job-1", {"step": step})
        changes = watcher.take()
    kept = [p["step"] for p in changes.points["job-1"]]
    assert len(kept) <= 100
    assert kept[-1] == 1000
    assert changes.dropped + len(kept) == 1000
    assert not state._watchers  # the block ended: the watcher is gone


async def test_subscribe_yields_change_kinds() -> None:
    state = make_state()
    kinds = cast(AsyncGenerator[str, None], state.subscribe())
    first = asyncio.ensure_future(kinds.__anext__())
    await asyncio.sleep(0)
    state.set_draining(True)
    assert await asyncio.wait_for(first, 5) == "agent"
    await kinds.aclose()
