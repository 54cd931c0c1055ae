"""Turn a backend answer into a model or into one of our exceptions.

Everything here works on an already received ``httpx.Response``; the transport side
(connect failures, timeouts) is converted in ``client.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from training_agent.errors import (
    AgentOutdatedError,
    AuthError,
    ConflictError,
    HttpStatusError,
    ProtocolError,
)

M = TypeVar("M", bound=BaseModel)

# A server sentence longer than this is cut: it ends up in log lines and the dashboard.
MAX_SENTENCE_CHARS = 300
REDACTED = "[redacted]"

# A 403 with one of these codes refuses one job, not the key: the claim route answers
# ACCESS_DENIED for a job of another user, and contract section 9 says "skip it".
_JOB_LEVEL_CODES = frozenset({"ACCESS_DENIED"})


def parse_model(response: httpx.Response, model: type[M], *, what: str) -> M:
    """The 2xx ``response`` body as ``model``; ProtocolError with a readable reason if not."""
    body = _json_body(response)
    if body is None:
        content_type = response.headers.get("content-type", "no content type")
        raise ProtocolError(
            f"the backend answered {what} with something that is not JSON ({content_type}); "
            "check that the backend URL points at the training API"
        )
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ProtocolError(
            f"the backend's answer to {what} is not what this agent expects: {_first_problem(exc)}"
        ) from exc


def parse_lenient(response: httpx.Response, model: type[M]) -> M:
    """The 2xx ``response`` body as ``model``, or ``model()`` when it is not one.

    For answers whose body is a courtesy (a report was stored either way): a backend
    that answers a report with an empty or unexpected body still stored it.
    """
    body = _json_body(response)
    try:
        return model.model_validate(body if isinstance(body, dict) else {})
    except ValidationError:
        return model.model_validate({})


def status_error(
    response: httpx.Response, *, what: str, api_key_call: bool, secrets: Iterable[str] = ()
) -> HttpStatusError:
    """The exception for a non-2xx ``response`` to ``what`` (e.g. ``POST /api/...``).

    ``secrets`` are cut out of the server's sentence, in case a backend echoes them.
    """
    status = response.status_code
    body = _json_body(response)
    sentence, code = _error_fields(body)
    if sentence is None:
        sentence = f"{status} {response.reason_phrase}".strip()
    sentence = _redact(sentence, secrets)[:MAX_SENTENCE_CHARS]
    fields: dict[str, Any] = {
        "status": status,
        "code": code,
        "retry_after_s": parse_retry_after(response.headers.get("retry-after")),
        "body": body,
    }
    if status == 426:
        return _outdated(sentence, body, fields)
    if api_key_call and status in (401, 403) and code not in _JOB_LEVEL_CODES:
        return AuthError(f"the backend rejected the API key: {sentence}", **fields)
    message = f"the backend answered {status} to {what}: {sentence}"
    location = response.headers.get("location")
    if 300 <= status < 400 and location:
        # Redirects are not followed (a POST must not silently become a GET); say where to.
        message += f" (redirected to {location}; set the backend URL to that address)"
    if status == 409:
        return ConflictError(message, **fields)
    return HttpStatusError(message, **fields)


def _outdated(sentence: str, body: Any, fields: dict[str, Any]) -> AgentOutdatedError:
    """426 Upgrade Required: the one sentence that tells the user where to get a new agent."""
    url = body.get("download_url") if isinstance(body, dict) else None
    url = url if isinstance(url, str) and url.startswith(("https://", "http://")) else None
    where = url or "the platform's Training Agent page"
    message = (
        f"the backend needs a newer training-agent ({sentence.rstrip('.')}): download the "
        f"new version from {where}, install it and start the agent again"
    )
    return AgentOutdatedError(message[: MAX_SENTENCE_CHARS * 2], download_url=url, **fields)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta seconds or an HTTP date).

    >>> parse_retry_after("120")
    120.0
    """
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        return _seconds_until(value, now=now or datetime.now(UTC))
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(seconds, 0.0)


def _seconds_until(http_date: str, *, now: datetime) -> float | None:
    try:
        when = parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; an old-style date parses naive
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


def _json_body(response: httpx.Response) -> Any:
    """The decoded JSON body, or None when it is empty or not JSON."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:  # JSONDecodeError and UnicodeDecodeError both derive from it
        return None


def _error_fields(body: Any) -> tuple[str | None, str | None]:
    """``(sentence, code)`` from any error body shape we have seen.

    ``{"error": "...", "code": "..."}`` (the protocol), ``{"error": {"message", "code"}}``,
    and FastAPI's ``{"detail": "..."}``; anything else gives ``(None, None)``.
    """
    if not isinstance(body, dict):
        return None, None
    error = body.get("error")
    if isinstance(error, dict):
        body = {**body, **error}
        error = error.get("message")
    sentence = next(
        (v for v in (error, body.get("detail"), body.get("message")) if isinstance(v, str) and v),
        None,
    )
    code = body.get("code")
    return sentence, code if isinstance(code, str) and code else None


def _first_problem(exc: ValidationError) -> str:
    """One readable phrase for the first validation error (no pydantic dump)."""
    error = exc.errors(include_url=False, include_input=False)[0]
    field = ".".join(str(part) for part in error["loc"])
    if not field:
        return "the body is not a JSON object"
    if error["type"] == "missing":
        return f"'{field}' is missing"
    return f"'{field}' is invalid ({error['msg'].lower()})"


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text
