"""Say in one phrase why a request got no answer, as the agent's ``TransportError``.

httpx reports "All connection attempts failed" for a refused connection; the reason a
user can act on (refused, unknown host, untrusted certificate) is in the chain of causes.
"""

from __future__ import annotations

import os
import socket
import ssl

import httpx

from training_agent.errors import TransportError

# Most specific first: ConnectionRefusedError is also an OSError, and so on.
_OS_REASONS: tuple[tuple[type[OSError], str], ...] = (
    (ConnectionRefusedError, "connection refused"),
    (ConnectionResetError, "connection reset by the server"),
    (socket.gaierror, "unknown host name"),
)


def transport_error(exc: httpx.RequestError, origin: str, timeout: httpx.Timeout) -> TransportError:
    """The agent's ``TransportError`` for ``exc``: ``describe_failure``'s sentence, and
    whether the cause is a certificate this machine does not trust."""
    return TransportError(
        describe_failure(exc, origin, timeout), untrusted_certificate=untrusted_certificate(exc)
    )


def describe_failure(exc: httpx.RequestError, origin: str, timeout: httpx.Timeout) -> str:
    """A sentence naming ``origin`` and why the request to it failed.

    >>> describe_failure(httpx.ConnectError("x"), "http://127.0.0.1:8000", httpx.Timeout(5))
    'cannot reach http://127.0.0.1:8000: x'
    """
    if isinstance(exc, httpx.ConnectTimeout):
        return f"cannot reach {origin}: no connection within {timeout.connect:g}s"
    if isinstance(exc, httpx.ReadTimeout):
        return f"{origin} did not answer within {timeout.read:g}s"
    if isinstance(exc, httpx.WriteTimeout):
        return f"{origin} stopped accepting the request (write timed out)"
    if isinstance(exc, httpx.PoolTimeout):
        return f"no free connection to {origin} within {timeout.pool:g}s"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot reach {origin}: {_reason(exc)}"
    return f"lost the connection to {origin}: {_reason(exc)}"


def untrusted_certificate(exc: BaseException) -> bool:
    """True when ``exc`` failed because the server's TLS certificate is not trusted here."""
    return any(isinstance(cause, ssl.SSLCertVerificationError) for cause in _causes(exc))


def _reason(exc: BaseException) -> str:
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (
                f"its TLS certificate is not trusted ({cause.verify_message}); add the CA "
                "that signed it to this machine's trust store, or correct the backend URL"
            )
        if isinstance(cause, ssl.SSLError):
            return f"TLS failed ({cause.reason or cause})"
        for kind, reason in _OS_REASONS:
            if isinstance(cause, kind):
                return reason
        if isinstance(cause, OSError) and isinstance(cause.errno, int) and cause.errno > 0:
            return os.strerror(cause.errno).lower()
    return str(exc) or type(exc).__name__


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes, innermost last (guarded against cycles)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain
