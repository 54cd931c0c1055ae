"""A route gives its pooled connection back before FastAPI's serialisation thread hop.

With few worker threads and a one-connection pool, a route that kept its connection
until the request ended would leave every thread waiting for a connection owned by a
request that waits for a thread: the pool would time out and the requests would fail.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import anyio.to_thread
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine
from sqlalchemy.pool import QueuePool

from tests.backend.support import Caller
from training_backend.db import create_session_factory


@pytest.fixture
async def scarce_resources(app: FastAPI) -> AsyncIterator[None]:
    url = app.state.session_factory.kw["bind"].url
    engine = create_engine(url, poolclass=QueuePool, pool_size=1, max_overflow=0, pool_timeout=2)
    limiter = anyio.to_thread.current_default_thread_limiter()
    saved_factory, saved_tokens = app.state.session_factory, limiter.total_tokens
    app.state.session_factory = create_session_factory(engine)
    limiter.total_tokens = 2
    try:
        yield
    finally:
        app.state.session_factory = saved_factory
        limiter.total_tokens = saved_tokens
        engine.dispose()


@pytest.mark.usefixtures("scarce_resources")
async def test_many_polls_with_two_threads_and_one_connection(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    polls = [
        client.get("/api/training/agent/poll", headers=caller.headers(f"agent_{n:012d}"))
        for n in range(20)
    ]
    answers = await asyncio.wait_for(asyncio.gather(*polls), 30)
    assert [answer.status_code for answer in answers] == [200] * 20
