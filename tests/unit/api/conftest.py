"""The API client's wire tests: a fake server at the transport and a client on it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.fake_server import API_KEY, BASE_URL, IDENTITY, FakeServer
from training_agent.api import BackendClient


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
async def wire_client(server: FakeServer) -> AsyncIterator[BackendClient]:
    async with BackendClient(
        base_url=BASE_URL, api_key=API_KEY, identity=IDENTITY, transport=httpx.MockTransport(server)
    ) as backend:
        yield backend
