"""Fixtures shared by the agent's unit tests: a scripted fake backend and a client on it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.fake_backend import FakeBackend
from training_agent.api import BackendClient


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
async def client(backend: FakeBackend) -> AsyncIterator[BackendClient]:
    client = backend.client()
    yield client
    await client.aclose()
