"""Socket options for the connections to the backend: a send buffer that takes a chunk whole.

    httpx.AsyncClient(transport=backend_transport(verify), ...)   # None: httpx's default

An artifact chunk (8 MiB) is written to the connection in one call. What the kernel's
send buffer does not take at once, asyncio (3.11) copies twice in Python's memory (a
slice of the rest, then into its own buffer) and sends later: about a fifth of the
agent's CPU per uploaded GB, measured in docs/benchmarks.md. A send buffer of
``SEND_BUFFER_BYTES`` takes the whole chunk in that first call.

A fixed send buffer turns off the kernel's own sizing of it, which can grow to
``net.ipv4.tcp_wmem``'s maximum (4 MiB by default) and matters on long, fast links. The
kernel also caps what a program may ask for at ``net.core.wmem_max`` (208 KiB on many
systems). So the option is set only where the cap lets the buffer be at least as large
as the kernel's own sizing could make it; elsewhere the connection is left as it was.

A transport given to httpx turns off its reading of the proxy variables (``HTTPS_PROXY``
and the like), so where one is set the client keeps httpx's own transport and proxy.
"""

from __future__ import annotations

import socket
import ssl
import urllib.request
from pathlib import Path

import httpx

#: Asked for per connection; Linux doubles it for its own bookkeeping.
SEND_BUFFER_BYTES = 4 * 1024 * 1024

SocketOption = tuple[int, int, int]

_WMEM_MAX = Path("/proc/sys/net/core/wmem_max")
_TCP_WMEM = Path("/proc/sys/net/ipv4/tcp_wmem")


def send_buffer_options(wmem_max: int | None, tcp_wmem_max: int | None) -> list[SocketOption]:
    """``SO_SNDBUF`` if the cap (``wmem_max``) keeps it at least the kernel's own maximum.

    >>> send_buffer_options(4194304, 4194304) == [
    ...     (socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
    ... ]
    True
    >>> send_buffer_options(212992, 4194304)  # capped below what the kernel would reach
    []
    """
    if wmem_max is None or tcp_wmem_max is None:
        return []
    granted = 2 * min(SEND_BUFFER_BYTES, wmem_max)  # what the kernel then gives
    if granted < tcp_wmem_max:
        return []
    return [(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)]


def _read_ints(path: Path) -> list[int]:
    try:
        return [int(field) for field in path.read_text().split()]
    except (OSError, ValueError):
        return []


def socket_options() -> list[SocketOption]:
    """The options for this machine's connections to the backend (none off Linux)."""
    wmem_max = _read_ints(_WMEM_MAX)
    tcp_wmem = _read_ints(_TCP_WMEM)
    return send_buffer_options(
        wmem_max[0] if len(wmem_max) == 1 else None,
        tcp_wmem[2] if len(tcp_wmem) == 3 else None,
    )


def backend_transport(verify: ssl.SSLContext) -> httpx.AsyncHTTPTransport | None:
    """A transport with ``socket_options()``; None (httpx's default) if it would change nothing
    or if the environment names a proxy."""
    options = socket_options()
    if not options or urllib.request.getproxies():
        return None
    return httpx.AsyncHTTPTransport(verify=verify, socket_options=options)
