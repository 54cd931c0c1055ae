"""What every answer is sent with: no public API map unless asked for, HSTS over https,
and the session cookie's Secure flag behind a TLS-terminating proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.backend.accounts.conftest import PASSWORD, Member
from training_backend.app import create_app
from training_backend.settings import BackendSettings

DOCS = ("/docs", "/redoc", "/openapi.json")


async def started(settings: BackendSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://backend.test") as c:
            yield c


async def test_the_api_docs_are_off_by_default(client: httpx.AsyncClient) -> None:
    for path in DOCS:
        response = await client.get(path)
        assert response.status_code == 404, path


async def test_api_docs_on_serves_them(settings: BackendSettings) -> None:
    async for client in started(settings.model_copy(update={"api_docs": True})):
        for path in DOCS:
            assert (await client.get(path)).status_code == 200, path


def test_the_docs_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINING_BACKEND_API_DOCS", "1")
    assert BackendSettings().api_docs is True


async def test_hsts_only_over_https(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://backend.test") as https:
        secure = await https.get("/healthz")
    async with httpx.AsyncClient(transport=transport, base_url="http://backend.test") as http:
        plain = await http.get("/healthz")

    assert secure.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert "strict-transport-security" not in plain.headers


async def test_cookie_secure_marks_the_cookie_behind_a_tls_proxy(
    settings: BackendSettings, member: Member
) -> None:
    async for client in started(settings.model_copy(update={"cookie_secure": True})):
        response = await client.post(
            "/api/auth/login", json={"name": member.user.name, "password": PASSWORD}
        )
        assert response.status_code == 200
        assert "Secure" in response.headers["set-cookie"]
        assert "strict-transport-security" in response.headers
