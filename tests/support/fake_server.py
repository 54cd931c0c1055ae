"""A fake backend at the transport (httpx.MockTransport) for the API client's wire tests.

The ``server`` and ``wire_client`` fixtures in tests/unit/api/conftest.py use it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from training_agent.identity import AgentIdentity

API_KEY = "wak_0123456789abcdefghijKLMNOPQRSTuv"
JOB_TOKEN = "tok_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq"
BASE_URL = "http://backend.test"
IDENTITY = AgentIdentity(
    agent_id="agent_0123456789abcdef", hostname="gpu-box-1", platform="linux", version="1.2.3"
)
JOB = {
    "id": "job-1",
    "model_name": "tiny",
    "dataset_path": "u/private/d.jsonl.gz",
    "config": {"model": {"name": "gpt2"}},
    "total_epochs": None,
    "total_steps": None,
    "created_at": "2026-01-01T00:00:00Z",
}

Handler = Callable[[httpx.Request], httpx.Response]


class FakeServer:
    """Answers every request with the next queued response and records the requests."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.answer: Handler = lambda _request: httpx.Response(200, json={})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    def reply(self, status: int = 200, **kwargs: Any) -> None:
        self.answer = lambda _request: httpx.Response(status, **kwargs)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def last_json(self) -> Any:
        return json.loads(self.last.content)


def assert_api_key_auth(request: httpx.Request) -> None:
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.headers["X-Agent-ID"] == "agent_0123456789abcdef"
    assert request.headers["X-Agent-Hostname"] == "gpu-box-1"
    assert request.headers["X-Agent-Platform"] == "linux"
    assert request.headers["X-Agent-Version"] == "1.2.3"
