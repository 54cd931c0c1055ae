"""Request bodies: read JSON with a size cap, then validate into a schema.

Routes read their bodies through these helpers instead of FastAPI's body parameters so
that each endpoint can answer with the exact error the protocol names (``INVALID_METRIC``,
``INVALID_STATUS_VALUE``...) and so that authentication runs before the body is read.

A JSON body must say so (``Content-Type: application/json``, else 415): a browser sends
``text/plain`` to another site without asking it first, ``application/json`` never, so
this alone keeps a hostile page from posting a JSON body that parses. A body that does
not parse, for whatever reason (bad bytes, ``[`` nested 5,000 deep), is 400, never 500.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from training_backend.errors import ApiError, describe_validation_error

MAX_BODY_BYTES = 8 * 1024 * 1024
#: Deepest nesting of arrays and objects a body may have; far beyond any real config,
#: and far below the depth at which Python's JSON reader and writer give up.
MAX_JSON_DEPTH = 64

M = TypeVar("M", bound=BaseModel)
ErrorFactory = Callable[[list[ErrorDetails]], ApiError]


def too_large(message: str) -> ApiError:
    """413 ``PAYLOAD_TOO_LARGE`` with ``message``."""
    return ApiError(413, "PAYLOAD_TOO_LARGE", message)


async def _read_capped(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large(f"Request body is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large(f"Request body is larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _non_finite(_: str) -> None:
    # NaN and Infinity are not JSON, but Python's json module writes them (a diverged
    # run's loss). Read as null: stored as "no value" rather than refused, so an agent's
    # report never fails for ever over one bad number.
    return None


def _finite_or_none(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None  # 1e999 overflows to inf


async def read_json_object(request: Request) -> dict[str, Any]:
    """FastAPI dependency: the body as a JSON object (400 if it is not one, 413 if huge)."""
    return await read_json_object_capped(request, MAX_BODY_BYTES)


def require_json(request: Request) -> None:
    """415 ``UNSUPPORTED_MEDIA_TYPE`` unless the request says its body is JSON."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        message = "Send the request body as JSON with the header Content-Type: application/json"
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", message)


def parse_json(raw: bytes) -> Any:
    """``raw`` as a JSON document (non-finite numbers as null); 400 for anything else.

    >>> parse_json(b"[" * 5000)
    Traceback (most recent call last):
    ...
    training_backend.errors.ApiError: Request body is not valid JSON
    """
    try:
        data = json.loads(raw, parse_constant=_non_finite, parse_float=_finite_or_none)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(400, "INVALID_JSON", "Request body is not valid JSON") from exc
    if _depth_over(data, MAX_JSON_DEPTH):
        message = f"Request body is nested more than {MAX_JSON_DEPTH} levels deep"
        raise ApiError(400, "INVALID_JSON", message)
    return data


def _depth_over(document: Any, limit: int) -> bool:
    pending: list[tuple[Any, int]] = [(document, 0)]
    while pending:  # a loop, not recursion: that is what is being guarded against
        value, depth = pending.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            if depth >= limit:
                return True
            pending.extend((item, depth + 1) for item in value)
    return False


async def read_json_object_capped(request: Request, max_bytes: int) -> dict[str, Any]:
    """The body as a JSON object: 415 unless sent as JSON, 413 above ``max_bytes``."""
    require_json(request)
    data = parse_json(await _read_capped(request, max_bytes))
    if not isinstance(data, dict):
        raise ApiError(400, "INVALID_REQUEST", "Invalid request: the body must be a JSON object")
    return data


def json_body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` that documents a route's JSON body as ``model``.

    Routes read their bodies themselves (see above), so FastAPI cannot see them; this
    puts them in the OpenAPI schema for readers of ``/docs`` and for the fuzz tests.
    """
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})
    content = {"application/json": {"schema": _inlined(schema, definitions)}}
    return {"requestBody": {"required": required, "content": content}}


def _inlined(schema: Any, definitions: dict[str, Any]) -> Any:
    # The OpenAPI document has no "$defs" at its root: put each definition in place.
    if isinstance(schema, list):
        return [_inlined(item, definitions) for item in schema]
    if not isinstance(schema, dict):
        return schema
    reference = schema.get("$ref", "")
    if reference.startswith("#/$defs/"):
        return _inlined(definitions[reference.removeprefix("#/$defs/")], definitions)
    return {key: _inlined(value, definitions) for key, value in schema.items()}


def invalid_request(errors: list[ErrorDetails]) -> ApiError:
    """400 ``INVALID_REQUEST`` naming the first invalid field."""
    return ApiError(400, "INVALID_REQUEST", describe_validation_error(errors))


def validate(model: type[M], data: Any, *, on_error: ErrorFactory = invalid_request) -> M:
    """``data`` validated as ``model``; a failure becomes the ``ApiError`` from ``on_error``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise on_error(exc.errors()) from exc


def first_field(errors: list[ErrorDetails]) -> str | None:
    """The top-level field the first validation error is about, if any."""
    if not errors or not errors[0]["loc"]:
        return None
    return str(errors[0]["loc"][0])
