"""``POST /api/training/agent/enroll``: trade an enrollment token for an API key.

The one call an agent makes without a key (that is what it gets). Like every call in
``api/`` it makes one request and converts failures into ``ApiError``s; no retries: a
token is single use, and the installer decides what a failure means to the user.

    answer = await enroll_agent(base_url=url, token="wae_…", identity=identity)
    answer.api_key  # "wak_…", bound to identity.agent_id
"""

from __future__ import annotations

import httpx
from pydantic import BaseModel, ConfigDict, Field

from training_agent.api.client import _origin
from training_agent.api.failures import transport_error
from training_agent.api.responses import parse_model, status_error
from training_agent.errors import ConfigError
from training_agent.identity import AgentIdentity

ENROLL_PATH = "/api/training/agent/enroll"


class EnrollResponse(BaseModel):
    """The new key (shown once), what the platform named it, and its own URL."""

    model_config = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    api_key: str = Field(pattern=r"^wak_[0-9A-Za-z]{32}$")
    name: str | None = None
    backend_url: str | None = None


async def enroll_agent(
    *,
    base_url: str,
    token: str,
    identity: AgentIdentity,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout_s: float = 15.0,
) -> EnrollResponse:
    """Spend ``token`` at ``base_url`` for a ``training`` key bound to ``identity``."""
    url = httpx.URL(base_url.strip())
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(f"the backend URL {base_url!r} must start with http:// or https://")
    origin = _origin(url)
    timeout = httpx.Timeout(timeout_s)
    body = {
        "token": token,
        "agent_id": identity.agent_id,
        "hostname": identity.hostname,
        "platform": identity.platform,
        "version": identity.version,
    }
    async with httpx.AsyncClient(
        base_url=url.copy_with(path=url.path.rstrip("/")),
        transport=transport,
        timeout=timeout,
        follow_redirects=False,
        headers={"User-Agent": f"training-agent/{identity.version}"},
    ) as http:
        try:
            response = await http.post(ENROLL_PATH, json=body)
        except httpx.RequestError as exc:
            raise transport_error(exc, origin, timeout) from exc
    what = f"POST {ENROLL_PATH}"
    if not response.is_success:
        raise status_error(response, what=what, api_key_call=False, secrets=(token,))
    return parse_model(response, EnrollResponse, what=what)
