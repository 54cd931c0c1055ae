"""Rate limits and sign-in throttles shared by every backend process on one PostgreSQL
database: two processes allow together what one would, never twice as much."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from training_backend.db import create_db_engine, upgrade_database
from training_backend.errors import ApiError
from training_backend.ratelimit import ApiKeyRateLimit, LoginThrottle
from training_backend.services.shared_limits import DatabaseBuckets
from training_backend.settings import BackendSettings

pytestmark = pytest.mark.parametrize("database_kind", ["postgresql"])


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def stores(settings: BackendSettings, clock: Clock) -> Iterator[list[DatabaseBuckets]]:
    """The buckets of two backend processes on the same database."""
    engine = create_db_engine(settings.database_url)
    upgrade_database(engine)
    engine.dispose()
    opened = [DatabaseBuckets(clock=clock) for _ in range(2)]
    for store in opened:
        store.open(settings.database_url)
    yield opened
    for store in opened:
        store.close()


def allowed(limit: ApiKeyRateLimit, key: str) -> bool:
    try:
        limit.check(key)
    except ApiError as exc:
        assert exc.code == "RATE_LIMITED"
        return False
    return True


def test_two_processes_share_one_keys_allowance(
    stores: list[DatabaseBuckets], clock: Clock
) -> None:
    first, second = (ApiKeyRateLimit(per_minute=60, burst=10, store=store) for store in stores)
    answers = [allowed(first if n % 2 else second, "key-1") for n in range(30)]
    assert answers.count(True) == 10  # not 20
    assert allowed(first, "key-2")  # another key has its own bucket
    clock.now += 2  # one a second comes back
    assert [allowed(second, "key-1") for _ in range(3)] == [True, True, False]


def test_a_busy_key_takes_its_tokens_a_lease_at_a_time(
    stores: list[DatabaseBuckets], clock: Clock
) -> None:
    first, second = (ApiKeyRateLimit(per_minute=600, burst=600, store=store) for store in stores)
    assert all(allowed(first, "busy") for _ in range(30))  # one lease of 30
    assert first.check_here("busy") is False  # the lease is spent: the database decides
    assert second.check_here("busy") is False
    assert allowed(second, "busy")


def test_two_processes_share_one_sign_in_throttle(stores: list[DatabaseBuckets]) -> None:
    first, second = (LoginThrottle(name_burst=3, store=store) for store in stores)
    tries = []
    for n in range(6):
        try:
            (first if n % 2 else second).attempt(name="alice", address="10.0.0.1")
            tries.append(True)
        except ApiError as exc:
            assert exc.code == "LOGIN_THROTTLED"
            tries.append(False)
    assert tries == [True, True, True, False, False, False]
    first.succeeded(name="alice", address="10.0.0.1")
    second.attempt(name="alice", address="10.0.0.1")  # the owner's tries start afresh
