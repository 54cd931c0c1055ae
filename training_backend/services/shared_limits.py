"""Rate-limit buckets in the database, shared by every backend process on it.

    buckets = DatabaseBuckets()       made with the app, before it has a database
    buckets.open(database_url)        at start (the app's lifespan); close() at the end
    buckets.take("api_key:…", 30, rate_per_s=10, burst=600)   -> tokens taken

The app uses them on PostgreSQL, where several backend processes may serve one database;
on SQLite one process serves (``serve --workers`` is refused there), and its buckets stay
in its memory. The buckets have a small connection pool of their own: a request that
holds a connection of the app's pool may wait for one of these, never the other way
round, so the two can never wait on each other.

A bucket is one row of ``rate_limit_buckets``: its tokens and the (wall-clock) time they
were counted. Taking tokens is one conditional ``UPDATE`` that refills the bucket for
the time passed, caps it at ``burst`` and subtracts, only where enough are left, so
concurrent takers from any process can never overdraw it (on SQLite and PostgreSQL
alike); a missing row is inserted full first. Rows of buckets idle for an hour are
deleted by the housekeeping (``forget_idle_buckets``): every limit refills within that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, Engine, case, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from training_backend.db import create_db_engine, create_session_factory
from training_backend.db.models import RateLimitBucket
from training_backend.db.upsert import insert_for

#: A bucket untouched this long is full again, whatever its limit: its row can go.
IDLE_BUCKET_S = 3600.0
#: Connections of the buckets' own pool (a take holds one for one short transaction).
POOL_SIZE = 4


def _least(a: Any, b: Any) -> ColumnElement[float]:
    return case((a < b, a), else_=b)


def _greatest(a: Any, b: Any) -> ColumnElement[float]:
    return case((a > b, a), else_=b)


class DatabaseBuckets:
    """The ``BucketStore`` of ``ratelimit.py``, on the app's database."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._sessions: sessionmaker[Session] | None = None
        self._engine: Engine | None = None
        self._clock = clock

    def open(self, database_url: str) -> None:
        """Connect to the (migrated) database at ``database_url``, with a pool of its own."""
        self._engine = create_db_engine(database_url, pool_size=POOL_SIZE)
        self._sessions = create_session_factory(self._engine)

    def close(self) -> None:
        """Close the pool (the app's shutdown)."""
        if self._engine is not None:
            self._engine.dispose()
        self._engine, self._sessions = None, None

    def _session(self) -> Session:
        if self._sessions is None:
            raise RuntimeError("the rate-limit buckets are used before the app started")
        return self._sessions()

    def take(self, bucket: str, n: float, *, rate_per_s: float, burst: float) -> float:
        """Take ``n`` tokens, or 1 when fewer than ``n`` are left; how many were taken."""
        now = self._clock()
        with self._session() as db:
            db.execute(
                insert_for(db, RateLimitBucket.__table__)
                .values(bucket=bucket, tokens=burst, updated_at=now)
                .on_conflict_do_nothing(index_elements=["bucket"])
            )
            level = _least(
                burst,
                RateLimitBucket.tokens
                + _greatest(0.0, now - RateLimitBucket.updated_at) * rate_per_s,
            )
            for want in dict.fromkeys((n, 1.0)):
                taken = db.execute(
                    update(RateLimitBucket)
                    .where(RateLimitBucket.bucket == bucket, level >= want)
                    .values(tokens=level - want, updated_at=now)
                    .returning(RateLimitBucket.tokens)
                ).first()
                if taken is not None:
                    db.commit()
                    return want
            db.commit()
        return 0.0

    def wait_s(self, bucket: str, *, rate_per_s: float, burst: float) -> float:
        """Seconds until ``bucket`` has a token (0.0 now)."""
        with self._session() as db:
            row = db.execute(
                select(RateLimitBucket.tokens, RateLimitBucket.updated_at).where(
                    RateLimitBucket.bucket == bucket
                )
            ).first()
        if row is None:
            return 0.0
        tokens, updated_at = row
        level = min(burst, tokens + max(0.0, self._clock() - updated_at) * rate_per_s)
        return 0.0 if level >= 1.0 else (1.0 - level) / rate_per_s

    def give(self, bucket: str, n: float, *, rate_per_s: float, burst: float) -> None:
        """Put ``n`` tokens back (the bucket refilled for the time passed, never above
        ``burst``)."""
        now = self._clock()
        level = _least(
            burst,
            RateLimitBucket.tokens
            + _greatest(0.0, now - RateLimitBucket.updated_at) * rate_per_s
            + n,
        )
        with self._session() as db:
            db.execute(
                update(RateLimitBucket)
                .where(RateLimitBucket.bucket == bucket)
                .values(tokens=level, updated_at=now)
            )
            db.commit()

    def forget(self, bucket: str) -> None:
        """Drop the bucket: it starts full again."""
        with self._session() as db:
            db.execute(delete(RateLimitBucket).where(RateLimitBucket.bucket == bucket))
            db.commit()


def forget_idle_buckets(db: Session, *, now: float) -> int:
    """Delete the rows of buckets idle for ``IDLE_BUCKET_S``; how many (caller commits)."""
    result = db.execute(
        delete(RateLimitBucket)
        .where(RateLimitBucket.updated_at < now - IDLE_BUCKET_S)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
