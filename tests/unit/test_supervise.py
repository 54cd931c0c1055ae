"""Supervision: a long-lived task that dies of an unexpected error is logged with its
traceback and restarted with back-off, never stopped in silence (issue 16)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from training_agent.supervise import supervise


class Recorder:
    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.problems: list[tuple[str, str | None]] = []

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        await asyncio.sleep(0)

    def problem(self, name: str, sentence: str | None) -> None:
        self.problems.append((name, sentence))


async def test_a_task_that_fails_is_logged_and_restarted_with_growing_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) <= 3:
            raise KeyError(f"bug {len(runs)}")

    seen = Recorder()
    await supervise(
        "the uploader", flaky, sleep=seen.sleep, rng=lambda: 1.0, on_problem=seen.problem
    )

    assert len(runs) == 4  # three failures, then it returned: done
    assert seen.sleeps == [1.0, 2.0, 4.0]
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 3
    assert all(r.exc_info is not None for r in failures)  # the traceback is in the log
    assert "the uploader failed unexpectedly" in failures[0].getMessage()
    assert seen.problems[0] == (
        "the uploader",
        "the uploader failed unexpectedly (KeyError('bug 1')); restarting it",
    )
    assert seen.problems[-1] == ("the uploader", None)  # it ended well: no problem left


async def test_waits_stop_growing_at_a_minute() -> None:
    failures = 0

    async def broken() -> None:
        nonlocal failures
        failures += 1
        if failures < 12:
            raise RuntimeError("always")

    seen = Recorder()
    await supervise("the poll loop", broken, sleep=seen.sleep, rng=lambda: 1.0)
    assert max(seen.sleeps) == 60.0


async def test_a_restarted_task_that_runs_healthy_again_clears_its_problem() -> None:
    started = asyncio.Event()
    runs = 0

    async def once_broken() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise ValueError("first run")
        started.set()
        await asyncio.Event().wait()  # runs for ever, healthy

    seen = Recorder()
    task = asyncio.create_task(
        supervise(
            "the status API", once_broken, sleep=seen.sleep, healthy_s=0.05, on_problem=seen.problem
        )
    )
    await asyncio.wait_for(started.wait(), 5)
    async with asyncio.timeout(5):
        while seen.problems[-1][1] is not None:
            await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [sentence is None for _, sentence in seen.problems] == [False, True]


async def test_cancellation_passes_through_and_stops_the_task() -> None:
    inner_cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            inner_cancelled.set()

    task = asyncio.create_task(supervise("the uploader", forever))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert inner_cancelled.is_set()
