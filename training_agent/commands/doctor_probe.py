"""The one poll ``doctor`` makes with the agent's own client, and what it tells.

The backend, TLS, key and clock checks all read this :class:`Probe`, so they see what
the agent sees: the same TLS context (``tls.py``), the same proxy variables.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from training_agent.errors import ConfigError, HttpStatusError, TrainingAgentError
from training_agent.identity import detect_identity

# Sent when no key is stored, so reachability and TLS are still checked (the backend
# answers 401; the key check says the key is missing).
PLACEHOLDER_KEY = "wak_" + "0" * 32


@dataclass(frozen=True)
class Probe:
    """One poll's outcome: the HTTP status (None: no answer), what failed, the Date."""

    status: int | None
    error: BaseException | None = None
    server_date: str | None = None
    received_at: float = 0.0  # time.time() when the answer arrived
    elapsed_ms: float = 0.0


def probe_backend(url: str, api_key: str, agent_id: str) -> Probe:
    """Poll once with the agent's client; never raises for what the backend does."""
    seen: dict[str, Any] = {}

    async def remember(response: httpx.Response) -> None:
        seen.update(date=response.headers.get("date"), at=time.time())

    async def poll() -> None:
        from training_agent.api import BackendClient

        async with BackendClient(
            base_url=url,
            api_key=api_key,
            identity=detect_identity(agent_id),
            timeout_s=15,
            on_response=remember,
        ) as client:
            await client.poll()

    started = time.monotonic()
    error: BaseException | None = None
    status: int | None = 200
    try:
        asyncio.run(poll())
    except HttpStatusError as exc:
        status, error = exc.status, exc
    except TrainingAgentError as exc:  # no answer, a bad answer, a bad CA bundle
        status, error = (200 if "at" in seen else None), exc
    elapsed = (time.monotonic() - started) * 1000
    return Probe(status, error, seen.get("date"), seen.get("at", 0.0), elapsed)


def tls_failure(error: BaseException | None) -> BaseException | None:
    """The ``ssl`` error somewhere in ``error``'s chain of causes, if any."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, ssl.SSLError):
            return error
        if isinstance(error, ConfigError) and "CA bundle" in str(error):
            return error  # SSL_CERT_FILE names a file that cannot be loaded
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def proxy_for(url: str, environ: Mapping[str, str]) -> str | None:
    """The proxy httpx uses for ``url`` by the proxy variables, without its password."""
    parts = urlsplit(url)
    proxies = {
        name[: -len("_proxy")].lower(): value
        for name, value in environ.items()
        if name.lower().endswith("_proxy") and value
    }
    if not proxies or _bypassed(parts.hostname or "", proxies.get("no", "")):
        return None
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy is None:
        return None
    shown = urlsplit(proxy)
    return f"{shown.scheme}://{shown.hostname}" + (f":{shown.port}" if shown.port else "")


def _bypassed(host: str, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` (comma-separated hosts or domains, or ``*``) covers ``host``."""
    for entry in (part.strip().lower().lstrip(".") for part in no_proxy.split(",")):
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return True
    return False
