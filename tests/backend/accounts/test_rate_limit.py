"""Per-key rate limits (token buckets, injected clock) and the cost of checking a key."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.orm import Session

from tests.backend.support import AGENT_ID, Caller, MakeKey
from training_backend import ratelimit
from training_backend.app import create_app
from training_backend.db.types import utcnow
from training_backend.errors import ApiError
from training_backend.ratelimit import ApiKeyRateLimit, RateLimiter
from training_backend.services.api_keys import authenticate_api_key, create_api_key
from training_backend.services.users import create_user
from training_backend.settings import BackendSettings

POLL = "/api/training/agent/poll"


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_the_burst_then_refills_at_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)

    assert [limiter.spend("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.spend("a") == pytest.approx(1.0)
    clock.now += 0.5
    assert limiter.spend("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.spend("a") == 0.0
    assert limiter.spend("b") == 0.0  # buckets are per key


def test_a_long_pause_refills_no_more_than_the_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=60, burst=2, clock=clock)
    limiter.spend("a")
    clock.now += 3600
    assert [limiter.spend("a") for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]


def test_wait_s_does_not_spend_and_reset_refills() -> None:
    limiter = RateLimiter(per_minute=6, burst=1, clock=FakeClock())
    assert limiter.wait_s("a") == 0.0
    assert limiter.wait_s("a") == 0.0
    limiter.spend("a")
    assert limiter.wait_s("a") == pytest.approx(10.0)
    limiter.reset("a")
    assert limiter.wait_s("a") == 0.0


def test_idle_buckets_are_dropped_when_there_are_too_many(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ratelimit, "MAX_BUCKETS", 10)
    clock = FakeClock()
    limiter = RateLimiter(per_minute=60, burst=1, clock=clock)
    for n in range(10):
        limiter.spend(f"old{n}")
    clock.now += 5  # all refilled: idle
    limiter.spend("busy")
    assert len(limiter._buckets) == 1


def test_zero_per_minute_means_no_limit() -> None:
    limit = ApiKeyRateLimit(per_minute=0, burst=1)
    for _ in range(1000):
        limit.check("key")


def test_the_limit_is_429_with_retry_after_in_whole_seconds() -> None:
    clock = FakeClock()
    limit = ApiKeyRateLimit(per_minute=40, burst=1, clock=clock)
    limit.check("key")
    with pytest.raises(ApiError) as refused:
        limit.check("key")
    assert refused.value.status == 429
    assert refused.value.code == "RATE_LIMITED"
    assert refused.value.message == "Rate limit exceeded for this API key; try again in 2 s"
    assert refused.value.headers == {"Retry-After": "2"}  # 1.5 s, rounded up


async def test_a_key_over_its_limit_gets_429_and_other_keys_do_not(
    client: httpx.AsyncClient, app: FastAPI, make_key: MakeKey
) -> None:
    clock = FakeClock()
    app.state.api_key_rate_limit = ApiKeyRateLimit(per_minute=60, burst=2, clock=clock)
    busy, calm = make_key(), make_key()

    answers = [(await client.get(POLL, headers=busy.headers())).status_code for _ in range(3)]
    limited = await client.get(POLL, headers=busy.headers())
    other = await client.get(POLL, headers=calm.headers())

    assert answers == [200, 200, 429]
    assert limited.json() == {
        "error": "Rate limit exceeded for this API key; try again in 1 s",
        "code": "RATE_LIMITED",
    }
    assert limited.headers["Retry-After"] == "1"
    assert other.status_code == 200
    clock.now += 1
    assert (await client.get(POLL, headers=busy.headers())).status_code == 200


async def test_the_limit_covers_every_api_key_route_and_not_bad_keys(
    client: httpx.AsyncClient, app: FastAPI, caller: Caller
) -> None:
    app.state.api_key_rate_limit = ApiKeyRateLimit(per_minute=60, burst=1, clock=FakeClock())
    bad = {"Authorization": "Bearer wak_" + "A" * 32, "X-Agent-ID": AGENT_ID}
    for _ in range(5):  # unknown keys are refused before the limit, and spend nothing
        assert (await client.get(POLL, headers=bad)).status_code == 401

    assert (await client.get(POLL, headers=caller.headers())).status_code == 200
    status = await client.get(
        "/api/training/local/some-job/status", headers={"X-API-Key": caller.key}
    )
    assert status.status_code == 429


@pytest.fixture
async def strict_client(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = BackendSettings(
        database_url=f"sqlite:///{tmp_path / 'strict.sqlite3'}",
        rate_limit_per_minute=1,
        rate_limit_burst=1,
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://b.test") as http:
            yield application, http


async def test_the_settings_set_the_limit(
    strict_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    application, http = strict_client
    with application.state.session_factory() as db:
        user = create_user(db, name="strict")
        _, key = create_api_key(db, user_id=user.id, name="k", scopes=["training"])
    headers = {"Authorization": f"Bearer {key}", "X-Agent-ID": AGENT_ID}
    assert (await http.get(POLL, headers=headers)).status_code == 200
    refused = await http.get(POLL, headers=headers)
    assert refused.status_code == 429
    # One token a minute: the next comes a minute after the first poll, less the time the
    # two polls took (seconds on a loaded machine); a limit of 600 would say 1.
    assert 45 <= int(refused.headers["Retry-After"]) <= 60


@pytest.fixture
def statements(db: Session) -> Iterator[list[str]]:
    seen: list[str] = []
    engine = db.get_bind()

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def test_checking_a_key_costs_the_same_with_many_keys_stored(
    db: Session, make_key: MakeKey, statements: list[str]
) -> None:
    first = make_key()
    statements.clear()
    authenticate_api_key(db, key=first.key, scope="training", now=utcnow())
    with_one = list(statements)

    for _ in range(300):
        create_api_key(db, user_id=first.user.id, name="more", scopes=["training"])
    last = make_key()
    db.commit()
    statements.clear()
    authenticate_api_key(db, key=last.key, scope="training", now=utcnow())

    assert len(statements) == len(with_one)  # one lookup by hash (and one usage write)
    assert "WHERE api_keys.key_hash = " in statements[0]
    if db.get_bind().dialect.name == "sqlite":
        plan = db.connection().exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT id FROM api_keys WHERE key_hash = 'x'"
        )
        assert "USING INDEX" in " ".join(str(row) for row in plan)
