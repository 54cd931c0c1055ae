"""Errors the API answers with, and the handlers that give every error one shape.

    ApiError(status, code, message)     raised by services, dependencies and routes

Every error body is ``{"error": "<one sentence>", "code": "<UPPER_SNAKE>"}`` plus any
``extra`` fields (``expected_offset`` for ``LOG_GAP``). A 429 carries ``Retry-After``.
Request validation errors become 400 ``INVALID_REQUEST`` (or ``INVALID_JSON``), and
database errors caused by a value in the request become 400 too: a bad request must never
produce a 500. A database that cannot be reached (down, restarting, a connection cut)
answers 503 ``DATABASE_UNAVAILABLE`` with ``Retry-After``, and one whose disk is full 507
``INSUFFICIENT_STORAGE``: in both cases the request's transaction was not committed, so
nothing of it is stored and the client sends it again (``db/faults.py`` tells them apart).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from training_backend.db.faults import DATABASE_RETRY_AFTER_S, is_disk_full, is_unavailable

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An answer other than 2xx: HTTP status, machine code and a sentence for people."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        """The JSON response for this error."""
        body = {"error": self.message, "code": self.code, **self.extra}
        return JSONResponse(body, status_code=self.status, headers=self.headers or None)


def describe_validation_error(errors: Sequence[Any]) -> str:
    """One readable sentence for the first pydantic error, naming the field.

    >>> describe_validation_error([{"loc": ("body", "limit"), "msg": "Input should be > 0"}])
    'Invalid request: limit: input should be > 0'
    """
    if not errors:
        return "Invalid request"
    first = errors[0]
    loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    msg = str(first.get("msg", "is invalid"))
    msg = msg[:1].lower() + msg[1:]
    where = ".".join(loc)
    return f"Invalid request: {where}: {msg}" if where else f"Invalid request: {msg}"


def _is_json_error(errors: Sequence[Any]) -> bool:
    return any(error.get("type") == "json_invalid" for error in errors)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if _is_json_error(errors):
        return ApiError(400, "INVALID_JSON", "Request body is not valid JSON").response()
    return ApiError(400, "INVALID_REQUEST", describe_validation_error(errors)).response()


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
    message = str(exc.detail) if exc.detail else "Request failed"
    return ApiError(exc.status_code, code, message, headers=exc.headers).response()


async def _data_error(_: Request, exc: Exception) -> JSONResponse:
    # A value the database cannot store (out of range, NUL byte on PostgreSQL...) came in
    # the request: that is the client's mistake, not a server failure.
    logger.info("database rejected a request value: %s", exc)
    return ApiError(400, "INVALID_REQUEST", "Invalid request: a value is out of range").response()


async def _integrity_error(_: Request, exc: Exception) -> JSONResponse:
    logger.warning("integrity error: %s", exc)
    return ApiError(409, "CONFLICT", "The request conflicts with the stored state").response()


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)
    if is_disk_full(exc):
        logger.error("the database's disk is full; requests that write fail: %s", exc.orig)
        message = (
            "The server's disk is full, so nothing of this request was stored; "
            "it is accepted again once an administrator frees space"
        )
        return ApiError(507, "INSUFFICIENT_STORAGE", message).response()
    if is_unavailable(exc):
        logger.warning("the database is unavailable: %s", exc.orig)
        message = (
            "The server's database is unavailable, so nothing of this request was stored; "
            f"try again in {DATABASE_RETRY_AFTER_S} seconds"
        )
        headers = {"Retry-After": str(DATABASE_RETRY_AFTER_S)}
        return ApiError(503, "DATABASE_UNAVAILABLE", message, headers=headers).response()
    return await _unexpected_error(request, exc)


async def _unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    logger.exception("unexpected error", exc_info=exc)
    return ApiError(500, "INTERNAL_ERROR", "Internal server error").response()


def install_error_handlers(app: FastAPI) -> None:
    """Make every error the app answers with use the ``{"error", "code"}`` body."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unexpected_error)
