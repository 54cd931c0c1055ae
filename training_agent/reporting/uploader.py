"""Delivers the outbox to the backend: in order, in batches, with retries.

Per job, one pass sends the leading status changes (``running``), then every pending log
line and metric point, and the terminal status only once nothing else is left, so the
platform never shows a job completed with half its log, and only once the job's
artifact uploads (``reporting.artifacts``) settled, so its ``outputs`` can carry their
ids. Delivered rows are deleted; a
row is deleted only after the backend accepted it, so a crash at any point re-sends,
and the backend's offsets (``log_offsets``) and per-step keys make re-sending harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from training_agent.api import BackendClient
from training_agent.errors import ApiError, ConflictError, HttpStatusError, StateError
from training_agent.failure_streak import FailureStreak
from training_agent.reporting import extra
from training_agent.reporting.outbox import Outbox, PendingStatus
from training_agent.retry import (
    REPORT,
    WAIT_ADVICE,
    RetryPolicy,
    backoff_s,
    call_with_retry,
    is_job_gone,
    is_lasting,
    is_retryable,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

# Below the backend's per-request caps (5,000 lines / 1 MiB) with room to spare.
MAX_BATCH_LINES = 1000
MAX_BATCH_BYTES = 512 * 1024
MAX_BATCH_METRICS = 500
# A busy job reports in a stream (a log line and a metric point per training step, a
# hundred a second with a small model): passes are at least this far apart, so one pass
# carries a batch instead of one request per line. The first report after a quiet spell
# still goes out at once. Buildkite's log streamer sends once a second; a quarter keeps
# the page live. See docs/benchmarks.md (the trainer overhead).
BATCH_WINDOW_S = 1.0
# The one refusal a caller mends instead of dropping the report (docs/protocol.md).
LOG_GAP = "LOG_GAP"
TOO_LARGE = 413  # a batch is split in halves; a single report this large is dropped
FORBIDDEN = 403  # not a reason to drop a report: the job is held and retried later


def _ignore(*_args: object) -> None:
    return None


class _TooLarge(Exception):
    """A batch answered 413: send it in halves."""


class _JobGone(Exception):
    """The backend will never accept this job's reports again."""

    def __init__(self, cause: HttpStatusError) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _Holds:
    """Jobs whose delivery failed in a way no retry inside the pass covers (a garbled
    answer, a 403, a bug): each waits ``policy``'s back-off before its next try, so it
    neither spins nor holds up the other jobs."""

    def __init__(
        self, *, policy: RetryPolicy, rng: Callable[[], float], clock: Callable[[], float]
    ) -> None:
        self._policy = policy
        self._rng = rng
        self._clock = clock
        self._failures: dict[str, int] = {}
        self._until: dict[str, float] = {}
        self._streaks: dict[str, FailureStreak] = {}  # how the log tells each job's trouble

    def holds(self, job_id: str) -> bool:
        return self._clock() < self._until.get(job_id, -math.inf)

    def failed(self, job_id: str, exc: Exception) -> None:
        failures = self._failures[job_id] = self._failures.get(job_id, 0) + 1
        retry_after = exc.retry_after_s if isinstance(exc, HttpStatusError) else None
        delay = backoff_s(failures, self._policy, retry_after_s=retry_after, rng=self._rng)
        self._until[job_id] = self._clock() + delay
        if isinstance(exc, ApiError):
            streak = self._streaks.get(job_id) or FailureStreak(
                f"job {job_id} reports", logger=log, advice=WAIT_ADVICE, clock=self._clock
            )
            self._streaks[job_id] = streak
            streak.failed(exc, retry_in_s=delay, lasting=is_lasting(exc))
        elif isinstance(exc, StateError):  # a full disk: delivered, not yet marked so
            log.warning(
                "job %s: the outbox cannot record what was delivered (%s); next try in %.1fs",
                job_id,
                exc.__cause__ or exc,
                delay,
            )
        else:
            log.error(
                "job %s: reports not delivered, the agent failed sending them (a bug: please "
                "report it with this traceback); next try in %.1fs",
                job_id,
                delay,
                exc_info=exc,
            )

    def clear(self, job_id: str) -> None:
        self._failures.pop(job_id, None)
        self._until.pop(job_id, None)
        if streak := self._streaks.pop(job_id, None):
            streak.succeeded()


class Uploader:
    """Drains the outbox; ``run`` loops until cancelled, ``drain_once`` is one pass."""

    def __init__(
        self,
        *,
        outbox: Outbox,
        client: BackendClient,
        features: Callable[[], frozenset[str] | None],
        policy: RetryPolicy = REPORT,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        interval_s: float = 1.0,
        batch_window_s: float = BATCH_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        on_control: Callable[[str, str], None] = _ignore,
        on_gone: Callable[[str, HttpStatusError], None] = _ignore,
        on_delivered: Callable[[str], None] = _ignore,
    ) -> None:
        """``features()`` is None until the backend's extensions are known: nothing is
        sent before, so no report goes out without the offsets that make it idempotent.

        ``on_control(job_id, control)`` gets every ``control`` a report's answer carries;
        ``on_gone(job_id, error)`` is told when the backend refuses a job's reports for
        good (lease lost); ``on_delivered(job_id)`` when a job's last report went out.
        """
        self._on_control = on_control
        self._on_gone = on_gone
        self._on_delivered = on_delivered
        self._outbox = outbox
        self._client = client
        self._features = features
        self._policy = policy
        self._sleep = sleep
        self._rng = rng
        self._interval_s = interval_s
        self._batch_window_s = batch_window_s
        self._clock = clock
        self._wake = asyncio.Event()
        self._passed = asyncio.Event()
        self._holds = _Holds(policy=policy, rng=rng, clock=clock)

    def wake(self) -> None:
        """New reports are waiting (called by the sink)."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            await self.drain_once()
            passed_at = self._clock()
            self._passed.set()
            self._passed = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval_s)
            gather_s = self._batch_window_s - (self._clock() - passed_at)
            if gather_s > 0:
                await self._sleep(gather_s)  # let the reports of a busy job gather

    async def wait_delivered(self, job_id: str) -> None:
        """Return once the job's terminal status was delivered (or the job abandoned)."""
        while not self._outbox.is_finished(job_id):
            passed = self._passed
            if self._features() is not None:  # else a pass sends nothing: no hurry
                self.wake()
            await passed.wait()

    async def drain_once(self) -> bool:
        """One pass over every job; True when everything was delivered."""
        if self._features() is None:
            return not self._outbox.unfinished_jobs()
        delivered = True
        for job_id, token in self._outbox.unfinished_jobs():
            if self._holds.holds(job_id):
                delivered = False
                continue
            try:
                delivered &= await self._drain_job(job_id, token)
            except _JobGone as exc:
                self._give_up(job_id, exc)
            except Exception as exc:  # one job's trouble never stops the others' delivery
                self._holds.failed(job_id, exc)
                delivered = False
            else:
                self._holds.clear(job_id)
        return delivered

    def _give_up(self, job_id: str, exc: _JobGone) -> None:
        log.error("job %s: reports dropped, the backend no longer accepts them: %s", job_id, exc)
        self._outbox.finish_job(job_id)
        self._holds.clear(job_id)
        self._on_gone(job_id, exc.cause)
        self._on_delivered(job_id)

    async def _drain_job(self, job_id: str, token: str) -> bool:
        statuses = self._outbox.pending_statuses(job_id)
        while statuses and not statuses[0].status.is_terminal:
            await self._send_status(job_id, token, statuses.pop(0))
        await self._send_logs(job_id, token)
        await self._send_metrics(job_id, token)
        if self._outbox.has_data(job_id) or self._outbox.artifacts.unsettled(job_id):
            return False  # more arrived meanwhile, or outputs upload: the terminal status waits
        for status in statuses:
            await self._send_status(job_id, token, status)
            if status.status.is_terminal:
                self._outbox.finish_job(job_id)
                log.info("job %s: all reports delivered", job_id)
                self._on_delivered(job_id)
                return True
        return True

    async def _send_status(self, job_id: str, token: str, pending: PendingStatus) -> None:
        details: dict[str, Any] | None = pending.details or None
        if details and isinstance(details.get("outputs"), list):
            outputs = self._outbox.artifacts.outputs_detail(job_id, details["outputs"])
            details = {**details, "outputs": outputs}
        if details and "job_details" not in (self._features() or ()):
            if not pending.status.is_terminal:
                self._outbox.ack_status(pending.seq)  # only totals: a v1 backend has no use
                return
            details = None
        await self._call(
            job_id,
            f"job {job_id} status {pending.status.value}",
            lambda: self._client.update_status(
                job_id, token, pending.status, error=pending.error, details=details
            ),
        )
        self._outbox.ack_status(pending.seq)

    async def _send_logs(self, job_id: str, token: str) -> None:
        use_offsets = "log_offsets" in (self._features() or ())
        limit = MAX_BATCH_LINES
        while batch := self._outbox.pending_logs(job_id, limit=limit):
            lines = _cap_bytes(batch.lines)
            sent_below = batch.offset + len(lines)
            try:
                await self._call(
                    job_id,
                    f"job {job_id} logs",
                    lambda lines=lines, offset=batch.offset if use_offsets else None: (  # type: ignore[misc]
                        self._client.post_logs(job_id, token, lines, offset=offset)
                    ),
                    count=len(lines),
                )
            except _TooLarge:
                limit = max(1, len(lines) // 2)
                continue
            except ConflictError as exc:
                if exc.code != LOG_GAP:
                    raise
                sent_below = await self._after_gap(job_id, token, lines, batch.offset, exc)
            self._outbox.ack_logs(job_id, below=sent_below)
            if len(batch.lines) < limit and len(lines) == len(batch.lines):
                return  # all there was; lines that came meanwhile wait for the next pass

    async def _after_gap(
        self, job_id: str, token: str, lines: list[str], offset: int, exc: ConflictError
    ) -> int:
        """The backend's line count differs from ours; returns the offset now delivered."""
        expected = exc.body.get("expected_offset") if isinstance(exc.body, dict) else None
        if isinstance(expected, int) and expected > offset:
            return min(expected, offset + len(lines))  # it already has these lines
        # It lost lines we no longer hold: append ours after what it has.
        log.warning(
            "job %s: the backend expected log line %s, not %d; appending", job_id, expected, offset
        )
        await self._call(
            job_id, f"job {job_id} logs", lambda: self._client.post_logs(job_id, token, lines)
        )
        return offset + len(lines)

    async def _send_metrics(self, job_id: str, token: str) -> None:
        limit = MAX_BATCH_METRICS
        while points := self._outbox.pending_metrics(job_id, limit=limit):
            sent = extra.for_backend(points, self._features())
            try:
                await self._call(
                    job_id,
                    f"job {job_id} metrics",
                    lambda sent=sent: self._client.post_metrics(job_id, token, sent),  # type: ignore[misc]
                    count=len(sent),
                )
            except _TooLarge:
                limit = max(1, len(points) // 2)
                continue
            self._outbox.ack_metrics(job_id, points)
            if len(points) < limit:
                return  # all there was; the next pass takes what came meanwhile

    async def _call(
        self, job_id: str, what: str, call: Callable[[], Awaitable[T]], *, count: int = 1
    ) -> T | None:
        """Send with retries; pass on the answer's ``control``. None when refused for good.

        A batch of ``count`` > 1 answered 413 raises ``_TooLarge``: the caller halves it
        (a proxy in front of the backend may take less than the backend's own caps).
        """
        try:
            answer = await call_with_retry(
                call,
                policy=self._policy,
                sleep=self._sleep,
                rng=self._rng,
                clock=self._clock,
                describe=what,
                advice=WAIT_ADVICE,
            )
        except HttpStatusError as exc:
            if exc.status == TOO_LARGE and count > 1:
                log.warning("%s: %d in one request is too large; sending halves", what, count)
                raise _TooLarge from exc
            if is_job_gone(exc):  # a lost lease, a revoked token (403 JOB_TOKEN_REVOKED)...
                raise _JobGone(exc) from exc
            if exc.code == LOG_GAP or exc.status == FORBIDDEN or is_retryable(exc):
                # A gap the caller mends; another 403 (a proxy, a policy) the job's hold
                # waits out; a retryable one out of attempts.
                raise
            self._refused(what, exc)
            return None
        control = getattr(answer, "control", None)
        if isinstance(control, str):
            self._on_control(job_id, control)
        return answer

    def _refused(self, what: str, exc: HttpStatusError) -> None:
        # A report the backend rejects (400, 409 INVALID_TRANSITION, 422, a 413 of one
        # line...) would be rejected forever; keeping it would block every report after it.
        log.error("%s rejected by the backend, dropped: %s", what, exc)


def _cap_bytes(lines: list[str]) -> list[str]:
    """The longest prefix of ``lines`` within MAX_BATCH_BYTES (at least one line)."""
    total = 0
    for count, line in enumerate(lines):
        total += len(line.encode("utf-8", "replace")) + 4
        if total > MAX_BATCH_BYTES and count > 0:
            return lines[:count]
    return lines
