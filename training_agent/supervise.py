"""Keeps the daemon's long-lived tasks alive: a task that dies of an unexpected error is
logged with its traceback and started again after a back-off, never stopped in silence.

    await supervise("uploader", uploader.run, sleep=sleep, rng=rng)

Every failure a task expects (the backend is down, a report is refused, a job is gone)
is handled inside the task; what reaches ``supervise`` is a bug or something nobody
foresaw, so each one is logged at ERROR with its traceback and the task is started
again, 1 s doubling to 60 s apart (``retry.TASK_RESTART``). A task that then ran for
``HEALTHY_S`` counts its failures from zero again. A task that returns is done, and
``supervise`` returns with it; cancellation (how the daemon stops its tasks) passes
straight through.

Restarting was chosen over exiting: the agent's other tasks (a running job, the
delivery of other jobs' reports, the status API) go on meanwhile, whereas an exit
would kill the running jobs' trainers' reporting and, under a service manager, restart
into the same bug. ``training-agent status`` and the log say what failed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from training_agent.retry import TASK_RESTART, RetryPolicy, backoff_s

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

# A task that ran this long since its last restart is healthy again: its next failure
# waits 1 s, not the 60 s that a crash loop has grown to.
HEALTHY_S = 300.0


def _ignore(_name: str, _problem: str | None) -> None:
    return None


async def supervise(
    name: str,
    run: Callable[[], Awaitable[None]],
    *,
    policy: RetryPolicy = TASK_RESTART,
    healthy_s: float = HEALTHY_S,
    sleep: Sleep = asyncio.sleep,
    rng: Callable[[], float] = random.random,
    on_problem: Callable[[str, str | None], None] = _ignore,
) -> None:
    """Run ``run()`` until it returns; restart it after each unexpected exception.

    ``on_problem(name, sentence)`` is told of each failure, and ``(name, None)`` once
    the restarted task has run ``healthy_s`` (the status API shows the sentence meanwhile).
    """
    failures = 0
    while True:
        task = asyncio.ensure_future(run())
        try:
            if failures and not await _runs_for(task, healthy_s):
                failures = 0  # healthy again
                on_problem(name, None)
            await task
        except Exception as exc:
            failures += 1
            delay = backoff_s(failures, policy, retry_after_s=None, rng=rng)
            log.error(
                "%s failed unexpectedly (a bug in the agent: please report it with this "
                "traceback); restarting it in %.1fs (failure %d)",
                name,
                delay,
                failures,
                exc_info=exc,
            )
            on_problem(name, f"{name} failed unexpectedly ({exc!r}); restarting it")
            await sleep(delay)
        else:
            if failures:
                on_problem(name, None)
            return
        finally:
            task.cancel()


async def _runs_for(task: asyncio.Future[None], seconds: float) -> bool:
    """Wait up to ``seconds`` for ``task``; True when it ended within them."""
    done, _ = await asyncio.wait({task}, timeout=seconds)
    return bool(done)
