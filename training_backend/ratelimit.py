"""Token-bucket rate limits: per API key, per job token, for sign-ins, and per client
address for enrollments.

Each key (an API key's id, a client address, a user name) has a bucket of ``burst``
tokens that refills at ``per_minute / 60`` tokens a second; a request spends one.

Given a ``store`` (``services.shared_limits.DatabaseBuckets``, as the app does), the
buckets live in the database and every backend process on it shares them: two processes
allow what one would. A process takes ``lease`` tokens from the shared bucket at a time
and spends them from memory, so a busy API key costs one database write per ``lease``
requests, never one per request; sign-ins and enrollments take one token at a time (they
are rare, and exactness matters there). Without a store (tests that drive the clock),
the buckets are this process's own.

Time comes from ``clock`` (``time.monotonic`` by default) so tests can drive it.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from fastapi import Request

from training_backend.errors import ApiError

Clock = Callable[[], float]

#: Buckets kept before idle (full) ones are dropped; bounds memory under many addresses.
MAX_BUCKETS = 50_000
LOGIN_REFUSED = "Too many failed sign-in attempts; wait {seconds} s and try again"


@dataclass
class _Bucket:
    tokens: float
    updated_at: float


class BucketStore(Protocol):
    """Buckets shared by every backend process (``services.shared_limits``)."""

    def take(self, bucket: str, n: float, *, rate_per_s: float, burst: float) -> float:
        """Take ``n`` tokens, or 1 when fewer than ``n`` are left: how many were taken
        (0.0: not even one)."""

    def wait_s(self, bucket: str, *, rate_per_s: float, burst: float) -> float:
        """Seconds until ``bucket`` has a token (0.0 now)."""

    def give(self, bucket: str, n: float, *, rate_per_s: float, burst: float) -> None:
        """Put ``n`` tokens back (never above ``burst``)."""

    def forget(self, bucket: str) -> None:
        """Drop the bucket: it starts full again."""


class RateLimiter:
    """Buckets of ``burst`` tokens refilled at ``per_minute`` a minute, one per key.

    >>> now = [0.0]
    >>> limiter = RateLimiter(per_minute=60, burst=2, clock=lambda: now[0])
    >>> [limiter.spend("k") for _ in range(3)]
    [0.0, 0.0, 1.0]
    """

    def __init__(
        self,
        *,
        per_minute: float,
        burst: int,
        clock: Clock = time.monotonic,
        store: BucketStore | None = None,
        scope: str = "",
        lease: int = 1,
    ) -> None:
        if per_minute <= 0 or burst < 1:
            raise ValueError("per_minute must be positive and burst at least 1")
        self._rate_per_s = per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()  # sync dependencies run in worker threads
        self._store = store
        self._scope = scope
        self._lease = float(max(1, min(lease, burst)))
        self._leased: dict[str, float] = {}  # tokens taken from the store, not spent yet

    def spend(self, key: str) -> float:
        """Take a token for ``key``: 0.0 if there was one, else the seconds until there is."""
        here = self.spend_here(key)
        if here is not None:
            return here
        assert self._store is not None  # spend_here decides everything without a store
        bucket = self._bucket(key)
        taken = self._store.take(
            bucket, self._lease, rate_per_s=self._rate_per_s, burst=self._burst
        )
        if taken < 1.0:
            return self._store.wait_s(bucket, rate_per_s=self._rate_per_s, burst=self._burst)
        with self._lock:
            if len(self._leased) >= MAX_BUCKETS:
                self._leased.clear()  # leftover leases go: the shared limit only tightens
            self._leased[key] = self._leased.get(key, 0.0) + taken - 1.0
        return 0.0

    def spend_here(self, key: str) -> float | None:
        """``spend`` from this process's memory alone (no database: for the event loop);
        ``None`` when only the shared store can say."""
        with self._lock:
            if self._store is None:
                bucket = self._refilled(key)
                if bucket.tokens >= 1.0:
                    bucket.tokens -= 1.0
                    return 0.0
                return (1.0 - bucket.tokens) / self._rate_per_s
            left = self._leased.get(key, 0.0)
            if left >= 1.0:
                self._leased[key] = left - 1.0
                return 0.0
        return None

    def wait_s(self, key: str) -> float:
        """Seconds until ``key`` has a token (0.0 now), without spending one."""
        if self._store is not None:
            if self._leased.get(key, 0.0) >= 1.0:
                return 0.0
            bucket = self._bucket(key)
            return self._store.wait_s(bucket, rate_per_s=self._rate_per_s, burst=self._burst)
        with self._lock:
            tokens = self._refilled(key).tokens
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self._rate_per_s

    def refund(self, key: str) -> None:
        """Give back one token spent by ``key`` (never above the burst)."""
        if self._store is not None:
            name = self._bucket(key)
            self._store.give(name, 1.0, rate_per_s=self._rate_per_s, burst=self._burst)
            return
        with self._lock:
            bucket = self._refilled(key)
            bucket.tokens = min(self._burst, bucket.tokens + 1.0)

    def reset(self, key: str) -> None:
        """Forget ``key``'s bucket: it starts full again."""
        if self._store is not None:
            with self._lock:
                self._leased.pop(key, None)
            self._store.forget(self._bucket(key))
            return
        with self._lock:
            self._buckets.pop(key, None)

    def _bucket(self, key: str) -> str:
        # Hashed: a bucket's name holds no user name or address, and no NUL either.
        digest = hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:40]
        return f"{self._scope}:{digest}"

    def _refilled(self, key: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._drop_idle(now)
            bucket = self._buckets[key] = _Bucket(self._burst, now)
            return bucket
        elapsed = max(0.0, now - bucket.updated_at)
        bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate_per_s)
        bucket.updated_at = now
        return bucket

    def _drop_idle(self, now: float) -> None:
        # A bucket that has refilled completely is the same as no bucket at all.
        full_after_s = self._burst / self._rate_per_s
        idle = [k for k, b in self._buckets.items() if now - b.updated_at >= full_after_s]
        for key in idle:
            del self._buckets[key]
        if len(self._buckets) >= MAX_BUCKETS:  # all busy: drop the oldest half
            for key in list(self._buckets)[: MAX_BUCKETS // 2]:
                del self._buckets[key]


def retry_after_header(wait_s: float) -> dict[str, str]:
    """``Retry-After`` in whole seconds, rounded up, at least 1."""
    return {"Retry-After": str(max(1, math.ceil(wait_s)))}


def _lease(burst: int) -> int:
    # A twentieth of the burst per database write: at most that much of one key's
    # allowance sits unspent in a process.
    return max(1, burst // 20)


class _PerKeyLimit:
    """One ``RateLimiter`` behind a ``check`` that answers 429 with a sentence; no limit
    at all (every request allowed) when ``per_minute`` is 0."""

    SCOPE = ""  # the shared buckets' name prefix
    REFUSED = ""  # the 429's sentence, with ``{seconds}``
    LEASED = True  # tokens leave the shared store a twentieth of the burst at a time

    def __init__(
        self,
        *,
        per_minute: float,
        burst: int,
        clock: Clock = time.monotonic,
        store: BucketStore | None = None,
    ) -> None:
        self._limiter = None
        if per_minute > 0:
            self._limiter = RateLimiter(
                per_minute=per_minute,
                burst=burst,
                clock=clock,
                store=store,
                scope=self.SCOPE,
                lease=_lease(burst) if self.LEASED else 1,
            )

    def check(self, key: str) -> None:
        """Spend one request of ``key``; 429 ``RATE_LIMITED`` when none is left."""
        if self._limiter is not None:
            _refuse(self._limiter.spend(key), "RATE_LIMITED", self.REFUSED)


class ApiKeyRateLimit(_PerKeyLimit):
    """The per-key limit the API-key dependency applies after the key is validated."""

    SCOPE = "api_key"
    REFUSED = "Rate limit exceeded for this API key; try again in {seconds} s"

    def check_here(self, key_id: str) -> bool:
        """``check`` without the database (for the event loop): ``False`` when only the
        shared buckets can say (nothing was spent; call ``check`` in a thread)."""
        if self._limiter is None:
            return True
        wait_s = self._limiter.spend_here(key_id)
        if wait_s is None:
            return False
        _refuse(wait_s, "RATE_LIMITED", self.REFUSED)
        return True


def _refuse(wait_s: float, code: str, sentence: str) -> None:
    """429 ``code`` with ``sentence`` (its ``{seconds}`` filled in) when ``wait_s`` > 0."""
    if wait_s > 0:
        seconds = max(1, math.ceil(wait_s))
        message = sentence.format(seconds=seconds)
        raise ApiError(429, code, message, headers=retry_after_header(wait_s))


class JobRateLimit(_PerKeyLimit):
    """The per-job limit on job-token routes (reports, heartbeats, the dataset download).

    A job token is a credential of its own: a leaked one, or a runaway trainer, must not
    be able to flood the backend through it. Counted after the token is known to be
    valid, by job id.
    """

    SCOPE = "job"
    REFUSED = "Rate limit exceeded for this job's reports; try again in {seconds} s"


class LoginThrottle:
    """Sign-in tries allowed per user name from one address, and per address, before a pause.

    Every try spends a token *before* the password is checked, so concurrent guesses
    cannot all pass a check that only counts failures afterwards; a correct password
    gives the tokens back. The per-name bucket is keyed by the name *and* the client
    address: a guesser elsewhere can use up only their own tries at that name, never
    the owner's. A guesser gets ``name_burst`` tries at a name (then ``name_per_minute``
    a minute) and ``address_burst`` tries from one address whatever the names (then
    ``address_per_minute`` a minute).

    Behind a reverse proxy the client address is the proxy's unless `serve` is told to
    believe its ``X-Forwarded-For`` (setting ``forwarded_allow_ips``).
    """

    def __init__(
        self,
        *,
        name_burst: int = 10,
        name_per_minute: float = 1,
        address_burst: int = 50,
        address_per_minute: float = 10,
        clock: Clock = time.monotonic,
        store: BucketStore | None = None,
    ) -> None:
        self._names = RateLimiter(
            per_minute=name_per_minute, burst=name_burst, clock=clock, store=store, scope="login"
        )
        self._addresses = RateLimiter(
            per_minute=address_per_minute,
            burst=address_burst,
            clock=clock,
            store=store,
            scope="login_address",
        )

    def attempt(self, *, name: str, address: str) -> None:
        """Spend one try of the name (from this address) and of the address.

        429 ``LOGIN_THROTTLED`` (and nothing spent) while either must wait.
        """
        name_key = _name_key(name, address)
        wait_s = self._names.spend(name_key)
        if wait_s == 0:
            wait_s = self._addresses.spend(address)
            if wait_s > 0:
                self._names.refund(name_key)
        _refuse(wait_s, "LOGIN_THROTTLED", LOGIN_REFUSED)

    def succeeded(self, *, name: str, address: str) -> None:
        """A correct password: the name's tries from this address start afresh, and the
        address gets its try back (a busy lab behind one NAT address is not slowed)."""
        self._names.reset(_name_key(name, address))
        self._addresses.refund(address)


class AddressRateLimit(_PerKeyLimit):
    """Requests allowed per client address, for an endpoint without a key to count by.

    Enrollment is once per machine: the burst lets a lab behind one NAT address enroll
    a rack at once; then ``per_minute`` a minute.
    """

    SCOPE = "enroll"
    REFUSED = "Too many enrollments from this address; try again in {seconds} s"
    LEASED = False  # rare, and exactness matters: one token at a time

    def __init__(
        self,
        *,
        per_minute: float = 10,
        burst: int = 30,
        clock: Clock = time.monotonic,
        store: BucketStore | None = None,
    ) -> None:
        super().__init__(per_minute=per_minute, burst=burst, clock=clock, store=store)


def client_address(request: Request) -> str:
    """The peer address of ``request`` (the proxy's, behind a reverse proxy)."""
    return request.client.host if request.client is not None else "unknown"


def _name_key(name: str, address: str) -> str:
    return f"{address}\x00{name.strip().casefold()[:200]}"
