"""Retry policy: what is worth retrying, how long to wait, and the loop that does it.

This is the only module that decides retries (docs/architecture.md, "Three client
layers"): ``api/`` makes single calls; loops call ``call_with_retry`` with one of the
named policies below, and the poll loop, which never gives up, asks ``poll_backoff_s``
and ``refused_poll_wait_s`` how long to wait after a failed poll.
docs/operations.md lists these budgets.

    await call_with_retry(
        lambda: backend.claim(job_id),
        policy=CLAIM,
        describe=f"claim of job {job_id}",
    )
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base, stop_never
from tenacity.wait import wait_base

from training_agent.errors import HttpStatusError, TransportError
from training_agent.failure_streak import FailureStreak

log = logging.getLogger(__name__)

T = TypeVar("T")

# 408 Request Timeout, 429 Too Many Requests and every 5xx are the server saying "not now";
# any other 4xx will be answered the same way next time (buildkite api/retryable.go).
_RETRYABLE_4XX = frozenset({408, 429})

# A Retry-After is a floor with 0-20 % on top, so a fleet told "60" does not return in
# the same second (Prefect client/base.py). Above an hour it is treated as a bug in the
# server rather than obeyed: a stuck report would otherwise never be retried.
RETRY_AFTER_JITTER = 0.2
RETRY_AFTER_MAX_S = 3600.0

# 2**62 seconds is far beyond any cap; the limit only keeps the float from overflowing
# when a forever policy has failed thousands of times.
_MAX_EXPONENT = 62


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently one kind of call is retried.

    ``max_attempts`` counts the first call too (1 = no retry, None = forever); the n-th
    wait is drawn uniformly from ``0 .. min(initial_s * 2**(n-1), max_s)``, and is at
    least ``min_s`` (so even an unlucky draw never retries in a tight loop).
    """

    max_attempts: int | None
    initial_s: float
    max_s: float
    min_s: float = 0.0


# Every report of a job (status changes, the terminal status included, log and metric
# batches): the outbox holds them durably, so they are retried forever, 1 s doubling to
# 60 s with full jitter (Buildkite stream reconnect 1 s -> 64 s; GitLab's per-request
# retry caps at 60 s). Non-retryable answers still stop at once. A stopping agent waits
# ``daemon.FINAL_FLUSH_S`` for them; what is left goes out at the next start.
REPORT = RetryPolicy(max_attempts=None, initial_s=1.0, max_s=60.0, min_s=0.5)

# A claim races other agents for the job; a few quick retries (at most 1 + 2 + 4 s) cover
# a blip or a 500 CLAIM_FAILED, and the next poll covers the rest. Buildkite retries its
# acquire 7 times up to 330 s, but it holds a job assigned to it; we would only lose it.
CLAIM = RetryPolicy(max_attempts=4, initial_s=1.0, max_s=4.0)

# A dataset download before a job starts: a few patient retries (at most 2 + 4 + 8 + 16 s
# of waiting) ride out a backend restart; after that the job fails and says why.
DATASET_DOWNLOAD = RetryPolicy(max_attempts=5, initial_s=2.0, max_s=30.0, min_s=0.5)

# An artifact's declaration and each of its chunks: like a report, retried for as long
# as it takes (the outbox holds where the upload stands), 1 s doubling to 60 s with full
# jitter. 507 (the backend's disk is full) is a 5xx: it is retried the same way, so
# an upload waits for space instead of failing. Non-retryable answers stop at once.
ARTIFACT = RetryPolicy(max_attempts=None, initial_s=1.0, max_s=60.0, min_s=0.5)

# A failed poll (no answer, 408, 429, 5xx, a malformed answer): the poll loop never gives
# up; it waits 2 s doubling to 60 s, full jitter, never below its own floor
# (``poll_backoff_s``).
POLL_ERROR = RetryPolicy(max_attempts=None, initial_s=2.0, max_s=60.0)

# A long-lived task of the daemon (uploader, poll loop, heartbeats, status API) that died
# of an unexpected error is started again 1 s doubling to 60 s later, full jitter, for
# ever (``supervise.supervise``): a crash loop logs at most one traceback a minute.
TASK_RESTART = RetryPolicy(max_attempts=None, initial_s=1.0, max_s=60.0, min_s=0.5)

# A poll with a rejected key (401/403) or refused (another 4xx) will not succeed in
# seconds: one try per 5 minutes (the ``auth_retry_seconds`` setting) plus 0-20 %, so a
# fleet with a dead key stays quiet (``refused_poll_wait_s``).
AUTH_RETRY_S = 300.0
AUTH_RETRY_JITTER = 0.2


# What to do about a report or upload that has failed for a minute (``failure_streak``).
WAIT_ADVICE = (
    "it waits in the outbox and is tried again until the backend takes it; check this "
    "machine's network and that the backend is up"
)


def is_retryable(exc: BaseException) -> bool:
    """True for failures that may go away by themselves: no answer, 408, 429 and 5xx.

    Every other 4xx (a rejected key, a conflict, a bad request) and a malformed answer
    would fail the same way again.
    """
    if isinstance(exc, TransportError):
        return True
    if isinstance(exc, HttpStatusError):
        return exc.status in _RETRYABLE_4XX or 500 <= exc.status <= 599
    return False


def is_lasting(exc: BaseException) -> bool:
    """True for failures no retry mends by itself: a TLS certificate this machine does not
    trust, and every 4xx but 408 and 429 (a rejected key, a refused request).

    Such a failure is logged as an ERROR at once (``failure_streak``); a transient one
    only when it has gone on for a while.
    """
    if isinstance(exc, TransportError):
        return exc.untrusted_certificate
    return isinstance(exc, HttpStatusError) and not is_retryable(exc)


# Answers after which a job's reports will never be accepted again: the lease was lost
# (the backend failed or re-queued the job), the job or its token is gone, or the token
# was retired because its agent or that agent's key was revoked.
TOKEN_REVOKED_CODE = "JOB_TOKEN_REVOKED"
JOB_GONE_CODES = frozenset(
    {"LEASE_EXPIRED", "JOB_NOT_FOUND", "INVALID_TOKEN", "MISSING_TOKEN", TOKEN_REVOKED_CODE}
)


def is_job_gone(exc: BaseException) -> bool:
    """True when the backend will never again accept reports for the job of a job-token call.

    A coded answer (``LEASE_EXPIRED``, ``JOB_NOT_FOUND``, ``INVALID_TOKEN``,
    ``MISSING_TOKEN``, ``JOB_TOKEN_REVOKED``), or a bare 401 or 404 to a job-token call.
    """
    if not isinstance(exc, HttpStatusError):
        return False
    return exc.code in JOB_GONE_CODES or exc.status in (401, 404)


def backoff_s(
    attempt: int, policy: RetryPolicy, *, retry_after_s: float | None, rng: Callable[[], float]
) -> float:
    """Seconds to wait after the ``attempt``-th failure (1-based).

    Full jitter after the cap: uniform in ``0 .. min(initial_s * 2**(attempt-1), max_s)``,
    so a fleet that failed together does not retry together. A ``retry_after_s`` from the
    server is a floor, even above ``max_s``, plus 0-20 % jitter.
    """
    exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
    cap = min(policy.initial_s * 2.0**exponent, policy.max_s)
    delay = max(_unit(rng) * cap, min(policy.min_s, cap))
    if retry_after_s is not None:
        floor = min(max(retry_after_s, 0.0), RETRY_AFTER_MAX_S)
        delay = max(delay, floor * (1.0 + RETRY_AFTER_JITTER * _unit(rng)))
    return delay


def poll_backoff_s(
    failures: int, *, min_s: float, retry_after_s: float | None, rng: Callable[[], float]
) -> float:
    """Seconds to wait after the ``failures``-th failed poll in a row: ``POLL_ERROR``'s
    backoff, never below ``min_s`` (the poll floor)."""
    return max(backoff_s(failures, POLL_ERROR, retry_after_s=retry_after_s, rng=rng), min_s)


def refused_poll_wait_s(
    retry_s: float, *, retry_after_s: float | None, rng: Callable[[], float]
) -> float:
    """Seconds to wait after a poll with a rejected key or a refused request: ``retry_s``
    (``auth_retry_seconds``) plus 0-20 %, or a longer ``Retry-After``."""
    return max(retry_s * (1.0 + AUTH_RETRY_JITTER * _unit(rng)), retry_after_s or 0.0)


async def call_with_retry(
    fn: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: Callable[[], float] = random.random,
    clock: Callable[[], float] = time.monotonic,
    describe: str = "",
    advice: str = "",
) -> T:
    """``await fn()``, retrying retryable failures as ``policy`` says.

    The last exception is re-raised unchanged once the attempts are used up, and any
    non-retryable exception at once. The retries are logged as ``failure_streak`` says:
    each one WARNING line while the failures are young, one ERROR (with ``advice``, what
    to do) once they have gone on for a minute, and an INFO line when the call then works.
    """
    what = describe or getattr(fn, "__qualname__", "call")
    streak = FailureStreak(what, logger=log, advice=advice, clock=clock)
    retrying = AsyncRetrying(
        retry=retry_if_exception(is_retryable),
        wait=_PolicyWait(policy, rng),
        stop=_stop(policy),
        sleep=sleep,
        before_sleep=lambda state: _log_retry(streak, state),
        reraise=True,
    )

    # tenacity awaits only what it recognises as a coroutine function; a lambda returning
    # an awaitable would come back un-awaited, so every call goes through this wrapper.
    async def attempt() -> T:
        return await fn()

    answer: T = await retrying(attempt)
    streak.succeeded()
    return answer


class _PolicyWait(wait_base):
    """tenacity wait strategy: ``backoff_s`` with the failed call's Retry-After."""

    def __init__(self, policy: RetryPolicy, rng: Callable[[], float]) -> None:
        self._policy = policy
        self._rng = rng

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = exc.retry_after_s if isinstance(exc, HttpStatusError) else None
        return backoff_s(
            retry_state.attempt_number, self._policy, retry_after_s=retry_after, rng=self._rng
        )


def _stop(policy: RetryPolicy) -> stop_base:
    if policy.max_attempts is None:
        return stop_never
    return stop_after_attempt(policy.max_attempts)


def _log_retry(streak: FailureStreak, state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    if exc is None:  # tenacity retries only on exceptions here
        return
    delay = state.next_action.sleep if state.next_action else 0.0
    streak.failed(exc, retry_in_s=delay, lasting=is_lasting(exc))


def _unit(rng: Callable[[], float]) -> float:
    """``rng()`` clamped to [0, 1], so a bad generator cannot break the bounds."""
    return min(max(rng(), 0.0), 1.0)
