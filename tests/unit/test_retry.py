"""Retry policy: what retries, how long it waits, when it stops. Time is faked throughout."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import pytest

from training_agent.errors import (
    ApiError,
    AuthError,
    ConflictError,
    HttpStatusError,
    ProtocolError,
    TransportError,
)
from training_agent.retry import (
    CLAIM,
    POLL_ERROR,
    REPORT,
    RetryPolicy,
    backoff_s,
    call_with_retry,
    is_lasting,
    is_retryable,
    poll_backoff_s,
    refused_poll_wait_s,
)

FAST = RetryPolicy(max_attempts=5, initial_s=1.0, max_s=8.0)
ONCE = RetryPolicy(max_attempts=1, initial_s=1.0, max_s=8.0)


class Clock:
    """An injected sleep that records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)


class Flaky:
    """An API call that raises the given exceptions in turn, then returns ``"ok"``."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def status(code: int, retry_after_s: float | None = None) -> HttpStatusError:
    return HttpStatusError(f"answered {code}", status=code, retry_after_s=retry_after_s)


def constant(value: float) -> Callable[[], float]:
    return lambda: value


# --- what retries ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", [408, 429, 500, 502, 503, 504, 599])
def test_server_side_statuses_retry(code: int) -> None:
    assert is_retryable(status(code))


@pytest.mark.parametrize("code", [301, 400, 401, 403, 404, 409, 410, 422])
def test_client_side_statuses_do_not_retry(code: int) -> None:
    assert not is_retryable(status(code))


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TransportError("cannot reach http://x: connection refused"), True),
        (TransportError("http://x did not answer within 30s"), True),
        (AuthError("the backend rejected the API key: no", status=401), False),
        (AuthError("the backend rejected the API key: revoked", status=403), False),
        (ConflictError("already claimed", status=409, code="ALREADY_CLAIMED"), False),
        (ProtocolError("not JSON"), False),
        (ApiError("other"), False),
        (ValueError("bug"), False),
    ],
)
def test_error_kinds(exc: BaseException, expected: bool) -> None:
    assert is_retryable(exc) is expected


# --- how long it waits ----------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_with_the_top_of_the_jitter() -> None:
    waits = [backoff_s(n, FAST, retry_after_s=None, rng=constant(1.0)) for n in range(1, 7)]
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_full_jitter_stays_within_zero_and_the_cap() -> None:
    rng = random.Random(7).random
    for attempt in range(1, 40):
        cap = min(FAST.initial_s * 2 ** (attempt - 1), FAST.max_s)
        waits = [backoff_s(attempt, FAST, retry_after_s=None, rng=rng) for _ in range(200)]
        assert all(0.0 <= wait <= cap for wait in waits)
        # full jitter, not "cap plus a little": the draws cover most of the range
        assert min(waits) < 0.1 * cap and max(waits) > 0.9 * cap


def test_jitter_is_applied_after_the_cap() -> None:
    # Jitter before the cap would give max_s for a late attempt whatever the draw.
    assert backoff_s(30, FAST, retry_after_s=None, rng=constant(0.25)) == 2.0


def test_forever_policies_do_not_overflow() -> None:
    assert backoff_s(100_000, REPORT, retry_after_s=None, rng=constant(1.0)) == REPORT.max_s


def test_a_broken_rng_cannot_break_the_bounds() -> None:
    assert backoff_s(3, FAST, retry_after_s=None, rng=constant(7.0)) == 4.0
    assert backoff_s(3, FAST, retry_after_s=None, rng=constant(-1.0)) == 0.0


def test_retry_after_is_a_floor_even_above_max_s() -> None:
    for draw in (0.0, 0.5, 1.0):
        wait = backoff_s(1, FAST, retry_after_s=30.0, rng=constant(draw))
        assert 30.0 <= wait <= 36.0
    assert backoff_s(1, FAST, retry_after_s=30.0, rng=constant(0.5)) == 33.0


def test_retry_after_below_the_backoff_does_not_shorten_it() -> None:
    assert backoff_s(4, FAST, retry_after_s=1.0, rng=constant(1.0)) == 8.0


def test_an_absurd_retry_after_is_capped_at_an_hour() -> None:
    assert backoff_s(1, FAST, retry_after_s=10**9, rng=constant(0.0)) == 3600.0


def test_named_policies_have_the_intended_shape() -> None:
    assert REPORT.max_attempts is None and POLL_ERROR.max_attempts is None
    assert CLAIM.max_attempts is not None and 2 <= CLAIM.max_attempts <= 5
    assert CLAIM.max_s <= 10


def test_a_failed_poll_backs_off_to_a_minute_but_never_below_the_floor() -> None:
    waits = [poll_backoff_s(n, min_s=3.0, retry_after_s=None, rng=constant(1.0)) for n in (1, 6)]
    assert waits == [3.0, 60.0]
    assert poll_backoff_s(9, min_s=3.0, retry_after_s=None, rng=constant(0.0)) == 3.0
    assert poll_backoff_s(1, min_s=3.0, retry_after_s=90.0, rng=constant(0.0)) == 90.0


def test_a_refused_poll_waits_the_auth_retry_plus_up_to_a_fifth() -> None:
    assert refused_poll_wait_s(300.0, retry_after_s=None, rng=constant(0.0)) == 300.0
    assert refused_poll_wait_s(300.0, retry_after_s=None, rng=constant(1.0)) == 360.0
    assert refused_poll_wait_s(300.0, retry_after_s=900.0, rng=constant(1.0)) == 900.0


# --- the retry loop -------------------------------------------------------------------------


async def test_success_after_transient_failures_returns_the_value() -> None:
    clock = Clock()
    call = Flaky(TransportError("refused"), status(503), status(429))
    result = await call_with_retry(call, policy=FAST, sleep=clock.sleep, rng=constant(1.0))
    assert result == "ok"
    assert call.calls == 4
    assert clock.delays == [1.0, 2.0, 4.0]


async def test_stops_at_max_attempts_and_reraises_the_last_exception() -> None:
    clock = Clock()
    failures = [status(500 + n) for n in range(6)]
    call = Flaky(*failures)
    with pytest.raises(HttpStatusError) as caught:
        await call_with_retry(call, policy=FAST, sleep=clock.sleep, rng=constant(0.5))
    assert call.calls == 5
    assert caught.value is failures[4]
    assert clock.delays == [0.5, 1.0, 2.0, 4.0]


async def test_non_retryable_error_is_raised_at_once() -> None:
    clock = Clock()
    conflict = ConflictError("gap", status=409, code="LOG_GAP")
    call = Flaky(TransportError("refused"), conflict)
    with pytest.raises(ConflictError) as caught:
        await call_with_retry(call, policy=REPORT, sleep=clock.sleep, rng=constant(0.0))
    assert caught.value is conflict
    assert call.calls == 2
    assert len(clock.delays) == 1


async def test_single_attempt_policy_never_sleeps() -> None:
    clock = Clock()
    call = Flaky(TransportError("refused"))
    with pytest.raises(TransportError):
        await call_with_retry(call, policy=ONCE, sleep=clock.sleep)
    assert (call.calls, clock.delays) == (1, [])


async def test_forever_policy_keeps_going() -> None:
    clock = Clock()
    call = Flaky(*[TransportError("refused") for _ in range(50)])
    assert await call_with_retry(call, policy=REPORT, sleep=clock.sleep) == "ok"
    assert call.calls == 51
    assert all(0.0 <= delay <= REPORT.max_s for delay in clock.delays)


async def test_retry_after_from_the_answer_is_honoured() -> None:
    clock = Clock()
    call = Flaky(status(429, retry_after_s=120.0))
    await call_with_retry(call, policy=FAST, sleep=clock.sleep, rng=constant(0.0))
    assert clock.delays == [120.0]


async def test_each_retry_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    call = Flaky(TransportError("cannot reach http://x: connection refused"), status(502))
    with caplog.at_level(logging.WARNING, logger="training_agent.retry"):
        await call_with_retry(
            call, policy=FAST, sleep=clock.sleep, rng=constant(1.0), describe="logs of job 7"
        )
    assert [record.getMessage() for record in caplog.records] == [
        "logs of job 7 failed (cannot reach http://x: connection refused), "
        "retrying in 1.0s (attempt 1)",
        "logs of job 7 failed (answered 502), retrying in 2.0s (attempt 2)",
    ]
    assert caplog.records[0].args is not None  # lazy % arguments, not an f-string


async def test_a_lambda_returning_an_awaitable_is_awaited() -> None:
    async def answer() -> int:
        return 42

    clock = Clock()
    assert await call_with_retry(lambda: answer(), policy=CLAIM, sleep=clock.sleep) == 42


async def test_a_call_failing_for_a_minute_is_one_error_then_quiet_then_one_recovery_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    call = Flaky(*[status(503) for _ in range(12)])
    with caplog.at_level(logging.DEBUG, logger="training_agent.retry"):
        await call_with_retry(
            call,
            policy=REPORT,
            sleep=sleep,
            rng=constant(1.0),
            clock=lambda: now[0],
            describe="logs of job 7",
            advice="it waits in the outbox",
        )
    by_level = {
        level: [r.getMessage() for r in caplog.records if r.levelno == level]
        for level in (logging.WARNING, logging.ERROR, logging.INFO)
    }
    assert len(by_level[logging.WARNING]) == 6  # 1, 2, 4, 8, 16, 32 s: the first minute
    [error] = by_level[logging.ERROR]
    assert error.startswith("logs of job 7 has failed for 63s (7 attempts; last: answered 503)")
    assert "; it waits in the outbox; next try in 60s" in error
    assert by_level[logging.INFO] == ["logs of job 7 works again after 423s (12 failed attempts)"]


async def test_an_untrusted_certificate_is_an_error_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    untrusted = TransportError("its TLS certificate is not trusted", untrusted_certificate=True)
    call = Flaky(untrusted, untrusted)
    with caplog.at_level(logging.INFO, logger="training_agent.retry"):
        await call_with_retry(call, policy=REPORT, sleep=Clock().sleep, describe="logs")
    assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.INFO]
    assert is_lasting(untrusted) and is_lasting(status(400)) and not is_lasting(status(503))
