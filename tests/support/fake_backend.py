"""A scripted fake of the backend's agent API for unit tests of one layer (httpx.MockTransport)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from training_agent.api import BackendClient
from training_agent.identity import AgentIdentity

API_KEY = "wak_0123456789abcdefghijKLMNOPQRSTuv"
IDENTITY = AgentIdentity(
    agent_id="agent_0123456789abcdef", hostname="gpu-box", platform="linux", version="0.0.1"
)
Route = Callable[[httpx.Request], httpx.Response]


class FakeBackend:
    """Routes by ``"METHOD /path"``; a route may be a response or a list used in order."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.routes: dict[str, list[Route]] = {}

    def on(self, route: str, *answers: httpx.Response | Route) -> None:
        self.routes[route] = [a if callable(a) else _const(a) for a in answers]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answers = self.routes.get(f"{request.method} {request.url.path}")
        if not answers:
            return httpx.Response(200, json={"success": True})
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return answer(request)

    def calls(self, route: str) -> list[dict[str, Any]]:
        method, path = route.split(" ", 1)
        return [
            json.loads(r.content) if r.content else {}
            for r in self.requests
            if r.method == method and r.url.path == path
        ]

    def client(self) -> BackendClient:
        return BackendClient(
            base_url="http://backend.test",
            api_key=API_KEY,
            identity=IDENTITY,
            transport=httpx.MockTransport(self),
        )


def _const(response: httpx.Response) -> Route:
    return lambda _request: response


def job(job_id: str = "job-1", **extra: Any) -> dict[str, Any]:
    return {"id": job_id, "model_name": "m", "dataset_path": "", "config": {}, **extra}
