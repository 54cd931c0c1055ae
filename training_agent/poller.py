"""The poll loop: ask for work, claim it, hand it over; pace itself and back off.

``Poller.step`` is one poll (and claim) and says how long to wait before the next;
``Poller.jobs`` is the loop around it as an async generator. The agent keeps polling
while a job runs, so the platform keeps showing it online; it only claims when it has
room. After a job it polls again at once (``wake``).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from training_agent.api import BackendClient, PolledJob, PollResponse
from training_agent.errors import (
    ApiError,
    AuthError,
    ConflictError,
    HttpStatusError,
    ProtocolError,
    TransportError,
)
from training_agent.jobs import ClaimedJob
from training_agent.retry import CLAIM, RetryPolicy, backoff_s, call_with_retry, is_retryable

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

LONG_POLL_WAIT_S = 30.0  # the most DESIGN.md section 3 lets a backend hold a poll
# Backoff while the backend is unreachable or failing: 2 s doubling to 2 min, full jitter.
ERROR_BACKOFF = RetryPolicy(max_attempts=None, initial_s=2.0, max_s=120.0)


class Connection(enum.StrEnum):
    """What the last poll said about the link to the backend."""

    STARTING = "starting"  # no poll answered yet
    CONNECTED = "connected"  # the last poll was answered
    UNREACHABLE = "unreachable"  # transport errors, 5xx or 429: retrying with backoff
    REJECTED = "rejected"  # 401/403: key wrong, scope missing or agent revoked; slow retries
    REFUSED = "refused"  # another 4xx: the backend refuses our requests; slow retries


@dataclass(frozen=True)
class Step:
    """One poll's result: the job claimed (if any) and the wait before the next poll."""

    job: ClaimedJob | None
    delay_s: float


class Poller:
    """Polls one backend for jobs on behalf of one agent."""

    def __init__(
        self,
        *,
        client: BackendClient,
        min_interval_s: float = 2.0,
        auth_retry_s: float = 60.0,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._client = client
        self._min_interval_s = min_interval_s
        self._auth_retry_s = auth_retry_s
        self._sleep = sleep
        self._rng = rng
        self._wake = asyncio.Event()
        self._stopped = False
        self._inflight: asyncio.Future[PollResponse] | None = None
        self._failures = 0
        self.connection = Connection.STARTING
        self.reason: str | None = None  # why the connection is not CONNECTED
        self.features: frozenset[str] = frozenset()

    def wake(self) -> None:
        """Poll again now (a job finished)."""
        self._wake.set()

    def stop(self) -> None:
        """End ``jobs()``: at once when pausing or polling, after it when claiming."""
        self._stopped = True
        self._wake.set()
        if self._inflight is not None:
            self._inflight.cancel()  # a poll is a peek: abandoning it loses nothing

    async def jobs(self, *, can_claim: Callable[[], bool]) -> AsyncIterator[ClaimedJob]:
        """Claimed jobs until ``stop()``; polls without claiming while ``can_claim()`` is false."""
        while not self._stopped:
            step = await self.step(can_claim=can_claim())
            if step.job is not None:
                yield step.job
                continue  # poll again at once: there may be more work
            await self._pause(step.delay_s)

    async def step(self, *, can_claim: bool) -> Step:
        """Poll once and, when there is a job and room for it, claim it."""
        # A long poll while busy would return at once for a job we cannot take.
        wait_s = LONG_POLL_WAIT_S if can_claim and "long_poll" in self.features else None
        self._inflight = asyncio.ensure_future(self._client.poll(wait_s=wait_s))
        try:
            await asyncio.wait({self._inflight})
            answer = self._inflight.result()
        except asyncio.CancelledError:
            if not self._stopped:
                raise
            return Step(job=None, delay_s=0.0)
        except ApiError as exc:
            return Step(job=None, delay_s=self._failed(exc))
        finally:
            self._inflight.cancel()
            self._inflight = None
        self._connected(answer)
        interval = max(answer.poll_interval_seconds, self._min_interval_s)
        delay = interval * (0.8 + 0.4 * self._rng())  # spread a fleet's polls apart
        if answer.job is None or not can_claim:
            return Step(job=None, delay_s=0.0 if wait_s else delay)
        return Step(job=await self.claim(answer.job), delay_s=delay)

    async def claim(self, polled: PolledJob) -> ClaimedJob | None:
        """Claim ``polled``; None when another agent won it or the claim failed."""
        try:
            won = await call_with_retry(
                lambda: self._client.claim(polled.id),
                policy=CLAIM,
                sleep=self._sleep,
                describe=f"claim of job {polled.id}",
            )
        except (ConflictError, HttpStatusError) as exc:
            if isinstance(exc, ConflictError) or exc.status in (403, 404):
                log.info("job %s not claimed: %s", polled.id, exc)
                return None
            log.warning("job %s not claimed: %s", polled.id, exc)
            return None
        except ApiError as exc:
            log.warning("job %s not claimed: %s", polled.id, exc)
            return None
        job = won.job or polled
        log.info("job %s claimed model=%s", job.id, job.model_name or "-")
        return ClaimedJob(
            id=job.id,
            job_token=won.job_token,
            config=job.config,
            model_name=job.model_name,
            dataset_path=job.dataset_path,
            lease_seconds=won.lease_seconds,
        )

    def _connected(self, answer: PollResponse) -> None:
        if self.connection is not Connection.CONNECTED:
            features = ", ".join(sorted(answer.features)) or "none (protocol v1)"
            log.info("connected to the backend; extensions: %s", features)
        self.connection, self.reason, self._failures = Connection.CONNECTED, None, 0
        self.features = answer.features

    def _failed(self, exc: ApiError) -> float:
        """Record a failed poll; the wait before the next one."""
        self._failures += 1
        retry_after = exc.retry_after_s if isinstance(exc, HttpStatusError) else None
        if isinstance(exc, TransportError | ProtocolError) or is_retryable(exc):
            state = Connection.UNREACHABLE
            delay = backoff_s(
                self._failures, ERROR_BACKOFF, retry_after_s=retry_after, rng=self._rng
            )
        else:
            # A rejected key or a refused request will not fix itself in seconds: wait
            # minutes (never less than auth_retry_s), doubling, so a fleet with a revoked
            # key does not hammer the backend.
            state = Connection.REJECTED if isinstance(exc, AuthError) else Connection.REFUSED
            ceiling = self._auth_retry_s * 2 ** min(self._failures - 1, 3)
            delay = max(ceiling * (0.8 + 0.4 * self._rng()), retry_after or 0.0)
        if state is not self.connection or str(exc) != self.reason:
            log.error("poll failed: %s; next try in %.0fs", exc, delay)
        else:
            log.debug("poll failed again: %s; next try in %.0fs", exc, delay)
        self.connection, self.reason = state, str(exc)
        return delay

    async def _pause(self, delay_s: float) -> None:
        """Sleep ``delay_s`` unless woken first."""
        if self._wake.is_set():
            if not self._stopped:
                self._wake.clear()
            return
        sleeper = asyncio.ensure_future(self._sleep(delay_s))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()
        if not self._stopped:
            self._wake.clear()
