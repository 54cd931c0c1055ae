"""The poll loop: ask for work, claim it, hand it over; pace itself and back off.

``Poller.step`` is one poll (and claim) and says how long to wait before the next;
``Poller.jobs`` is the loop around it as an async generator. The agent keeps polling
while a job runs, so the platform keeps showing it online; it only claims when it has
room. After a job it polls again at once (``wake``).

How it answers trouble (the request budget is in docs/operations.md):

- no answer, 408, 429 or 5xx: exponential backoff, 2 s doubling to 60 s, full jitter
  applied after the cap, never below ``min_interval_s``; a ``Retry-After`` is a floor
  (``retry.poll_backoff_s``); logged as ``failure_streak`` says: a blip is one WARNING
  line, a minute of failures one ERROR with what to do, the recovery one INFO line;
- 401 or 403 on the key: the key is re-read once (``reload_key``: the environment,
  the config, the credential store); an unchanged key parks the poller in ``rejected``
  ("API key rejected") with one try per ``auth_retry_s`` (5 min) at most
  (``retry.refused_poll_wait_s``);
- 403 ``AGENT_REVOKED``: the agent was removed on the platform; polling stops for good
  (``revoked`` says why) and the daemon exits with ``EXIT_REVOKED`` once its jobs end;
- a long poll answered without a job before the poll interval passed (the backend's
  per-key cap on held polls answers at once): the rest of the interval is waited, so a
  long poll goes out at most once per interval when the backend does not hold it;
- 426 (poll or claim): the backend needs a newer agent; polling stops for good
  (``outdated`` holds the error, which says where to download one) and the daemon
  raises it once its jobs end (``start`` exits 5).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from pydantic import SecretStr

from training_agent.api import BackendClient, DatasetRef, PolledJob, PollResponse
from training_agent.errors import (
    AgentOutdatedError,
    ApiError,
    AuthError,
    ConflictError,
    HttpStatusError,
    ProtocolError,
    TrainingAgentError,
    TransportError,
)
from training_agent.failure_streak import FailureStreak
from training_agent.jobs import ClaimedJob, JobDataset
from training_agent.logs import register_secret
from training_agent.retry import (
    AUTH_RETRY_S,
    CLAIM,
    call_with_retry,
    is_lasting,
    is_retryable,
    poll_backoff_s,
    refused_poll_wait_s,
)
from training_agent.status.state import AgentState

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
KeyReader = Callable[[], SecretStr | str | None]
"""Reads the API key again from where it came from; None when there is none now."""

LONG_POLL_WAIT_S = 30.0  # the most docs/protocol.md (long_poll) lets a backend hold a poll
REVOKED_CODE = "AGENT_REVOKED"
OUTAGE_ADVICE = (
    "check this machine's network and that the backend (backend_url) is up; running jobs "
    "go on and their reports wait in the outbox"
)


class Connection(enum.StrEnum):
    """What the last poll said about the link to the backend."""

    STARTING = "starting"  # no poll answered yet
    CONNECTED = "connected"  # the last poll was answered
    UNREACHABLE = "unreachable"  # transport errors, 5xx or 429: retrying with backoff
    REJECTED = "rejected"  # 401/403: key wrong or scope missing; one try per 5 minutes
    REFUSED = "refused"  # another 4xx: the backend refuses our requests; slow retries
    REVOKED = "revoked"  # 403 AGENT_REVOKED: removed on the platform; polling stopped
    OUTDATED = "outdated"  # 426: the backend needs a newer agent; polling stopped


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
        state: AgentState | None = None,
        min_interval_s: float = 2.0,
        auth_retry_s: float = AUTH_RETRY_S,
        reload_key: KeyReader | None = None,
        headers: Callable[[], dict[str, str]] | None = None,
        on_answer: Callable[[PollResponse], None] | None = None,
        holds: Callable[[str], bool] = lambda _job_id: False,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``headers()`` gives extra poll headers (``X-Agent-Info``...), asked per poll;
        ``on_answer`` sees every successful poll's answer (the self-update);
        ``holds(job_id)`` says the agent runs the job or still has reports of it: such a
        job is never claimed (again), whatever a backend offers."""
        self._client = client
        self._holds = holds
        self._state = state
        self._min_interval_s = min_interval_s
        self._auth_retry_s = auth_retry_s
        self._reload_key = reload_key
        self._headers = headers
        self._on_answer = on_answer
        self._sleep = sleep
        self._rng = rng
        self._clock = clock
        self._wake = asyncio.Event()
        self._refresh = False  # the in-flight poll was abandoned for a fresh one
        self._stopped = False
        self._inflight: asyncio.Future[PollResponse] | None = None
        self._failures = 0
        self._streak = FailureStreak("poll", logger=log, advice=OUTAGE_ADVICE, clock=clock)
        self.connection = Connection.STARTING
        self.reason: str | None = None  # why the connection is not CONNECTED
        self.features: frozenset[str] = frozenset()
        self.features_known = False  # a poll was answered: ``features`` is the backend's
        self.revoked: str | None = None  # why the platform revoked this agent, once it did
        self.outdated: AgentOutdatedError | None = None  # the 426 that stopped polling

    def known_features(self) -> frozenset[str] | None:
        """The backend's extensions; None until a poll was answered."""
        return self.features if self.features_known else None

    def wake(self) -> None:
        """Poll again now (a job finished)."""
        self._wake.set()

    def refresh(self) -> None:
        """Poll again now with fresh headers (the agent's state changed, e.g. its
        self-update): a held poll is abandoned, which loses nothing (a poll is a peek)."""
        self._refresh = True
        self._wake.set()
        if self._inflight is not None:
            self._inflight.cancel()

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
            await self.pause(step.delay_s)

    async def step(self, *, can_claim: bool) -> Step:
        """Poll once and, when there is a job and room for it, claim it."""
        # A long poll while busy would return at once for a job we cannot take.
        wait_s = LONG_POLL_WAIT_S if can_claim and "long_poll" in self.features else None
        headers = self._headers() if self._headers is not None else None
        started = self._clock()
        if self._state is not None:
            self._state.poll_started(long_poll=wait_s is not None)
        self._inflight = asyncio.ensure_future(self._client.poll(wait_s=wait_s, headers=headers))
        try:
            await asyncio.wait({self._inflight})
            if self._inflight.cancelled() and self._refresh and not self._stopped:
                self._refresh = False
                return Step(job=None, delay_s=0.0)
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
        held_s = self._clock() - started
        self._connected(answer, latency_s=held_s, long_poll=wait_s is not None)
        if self._on_answer is not None:
            self._on_answer(answer)
        interval = max(answer.poll_interval_seconds, self._min_interval_s)
        delay = interval * (0.8 + 0.4 * self._rng())  # spread a fleet's polls apart
        if answer.job is None or not can_claim:
            # A long poll the backend held re-polls at once; one answered early (its
            # per-key cap of held polls, or a proxy that does not hold) waits out the
            # interval, so a full cap never turns into a tight loop.
            return Step(job=None, delay_s=max(0.0, delay - held_s) if wait_s else delay)
        if self._holds(answer.job.id):
            log.info("job %s offered again, but it ran here: not claiming it", answer.job.id)
            return Step(job=None, delay_s=delay)
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
        except AgentOutdatedError as exc:
            self._outdate(exc)
            return None
        except (ConflictError, HttpStatusError) as exc:
            if exc.code == REVOKED_CODE:
                self._revoke(exc)
                return None
            if isinstance(exc, ConflictError) or exc.status in (403, 404):
                log.info("job %s not claimed: %s", polled.id, exc)
                return None
            log.warning("job %s not claimed: %s", polled.id, exc)
            return None
        except ApiError as exc:
            log.warning("job %s not claimed: %s", polled.id, exc)
            return None
        register_secret(won.job_token)  # never in the agent's log from here on
        job = won.job or polled
        log.info("job %s claimed model=%s", job.id, job.model_name or "-")
        return ClaimedJob(
            id=job.id,
            job_token=won.job_token,
            config=job.config,
            model_name=job.model_name,
            dataset_path=job.dataset_path,
            lease_seconds=won.lease_seconds,
            # Only a backend that offers dataset_download serves the file.
            dataset=_dataset(job.dataset) if "dataset_download" in self.features else None,
        )

    def _connected(self, answer: PollResponse, *, latency_s: float, long_poll: bool) -> None:
        self._streak.succeeded()
        if not self.features_known or answer.features != self.features:
            features = ", ".join(sorted(answer.features)) or "none (protocol v1)"
            log.info("connected to the backend; extensions: %s", features)
        self.connection, self.reason, self._failures = Connection.CONNECTED, None, 0
        self.features, self.features_known = answer.features, True
        if self._state is not None:
            self._state.poll_succeeded(
                latency_s=latency_s, features=answer.features, long_poll=long_poll
            )

    def _failed(self, exc: ApiError) -> float:
        """Record a failed poll; the wait before the next one."""
        self._failures += 1
        retry_after = exc.retry_after_s if isinstance(exc, HttpStatusError) else None
        if isinstance(exc, HttpStatusError) and exc.code == REVOKED_CODE:
            self._revoke(exc)
            return 0.0
        if isinstance(exc, AgentOutdatedError):
            self._outdate(exc)
            return 0.0
        if isinstance(exc, AuthError) and self._key_changed():
            log.warning("the backend rejected the API key; trying the key read again")
            self._failures = 0
            return 0.0
        if isinstance(exc, TransportError | ProtocolError) or is_retryable(exc):
            state = Connection.UNREACHABLE
            delay = poll_backoff_s(
                self._failures,
                min_s=self._min_interval_s,
                retry_after_s=retry_after,
                rng=self._rng,
            )
            reason = str(exc)
        else:
            state = Connection.REJECTED if isinstance(exc, AuthError) else Connection.REFUSED
            delay = refused_poll_wait_s(
                self._auth_retry_s, retry_after_s=retry_after, rng=self._rng
            )
            reason = _rejected_reason(exc) if state is Connection.REJECTED else str(exc)
        self._streak.failed(exc, retry_in_s=delay, lasting=is_lasting(exc), reason=reason)
        self.connection, self.reason = state, reason
        if self._state is not None:
            self._state.poll_failed(state=state.value, reason=reason, retry_in_s=delay)
        return delay

    def _key_changed(self) -> bool:
        """Re-read the API key; True (and use it) when it differs from the one rejected."""
        if self._reload_key is None:
            return False
        try:
            fresh = self._reload_key()
        except Exception as exc:  # the credential store may fail; the old key stays
            log.warning("cannot read the API key again: %s", exc)
            return False
        if fresh is None:
            return False
        raw = fresh.get_secret_value() if isinstance(fresh, SecretStr) else fresh
        if not raw.strip() or raw.strip() == self._client.api_key.get_secret_value():
            return False
        try:
            self._client.set_api_key(raw)
        except TrainingAgentError as exc:
            log.warning("the API key read again is not usable: %s", exc)
            return False
        return True

    def _revoke(self, exc: HttpStatusError) -> None:
        """The platform revoked this agent: stop polling for good and say why, once."""
        if self.revoked is None:
            self.revoked = (
                "the platform revoked this agent (it was removed on the Training Agent "
                "page), so it stops taking jobs; enable it again there and restart the agent"
            )
            log.error("%s (%s)", self.revoked, exc)
        self.connection, self.reason = Connection.REVOKED, self.revoked
        if self._state is not None:
            self._state.poll_failed(
                state=Connection.REVOKED.value, reason=self.revoked, retry_in_s=None
            )
        self.stop()

    def _outdate(self, exc: AgentOutdatedError) -> None:
        """The backend needs a newer agent: stop polling for good and say where to get it."""
        if self.outdated is None:
            self.outdated = exc
            log.error("%s", exc)
        self.connection, self.reason = Connection.OUTDATED, str(exc)
        if self._state is not None:
            self._state.poll_failed(
                state=Connection.OUTDATED.value, reason=str(exc), retry_in_s=None
            )
        self.stop()

    async def pause(self, delay_s: float) -> None:
        """Sleep ``delay_s`` unless woken first (``wake``, ``stop``)."""
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
        failed = sleeper.exception() if sleeper.done() and not sleeper.cancelled() else None
        if failed is not None:  # an injected sleep failed: not ours to swallow
            raise failed
        if not self._stopped:
            self._wake.clear()


def _rejected_reason(exc: ApiError) -> str:
    return (
        f"API key rejected ({exc}); give the agent a valid key with the 'training' scope "
        "(API_KEY or 'training-agent login'); it tries again every 5 minutes"
    )


def _dataset(ref: DatasetRef | None) -> JobDataset | None:
    if ref is None:
        return None
    return JobDataset(ref.id, ref.filename, ref.sha256, ref.size_bytes)
