"""A loopback proxy between the real agent and the real backend that counts upload bytes.

It forwards TCP both ways unchanged, reads the agent's HTTP/1.1 requests as they pass
(request line, ``Content-Length``, body), and counts the body bytes of every artifact
chunk (``PUT …/artifacts/{id}?offset=N``) it forwarded, the in-flight chunk of a killed
agent included. ``rate_bps`` slows the agent-to-backend direction, so a test can act in
the middle of an upload that loopback would otherwise finish in a second.

    with UploadProxy(backend_port, rate_bps=16 * MiB) as proxy:
        env = agent_env(home, backend_url=proxy.url, api_key=key)
        ...
        assert proxy.chunk_bytes <= size + chunk

When the backend is down, a new connection is closed at once (the agent sees a reset).
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from types import TracebackType
from typing import Self

_CHUNK_LINE = re.compile(rb"^PUT /api/training/local/[^/]+/artifacts/([^/?]+)\?offset=(\d+) ")
_READ = 256 * 1024


class UploadProxy:
    """See the module docstring."""

    def __init__(self, upstream_port: int, *, rate_bps: float | None = None) -> None:
        self.upstream_port = upstream_port
        self.rate_bps = rate_bps
        self.chunk_bytes = 0  # artifact chunk body bytes forwarded to the backend
        self.chunks: list[tuple[str, int]] = []  # (artifact id, offset) of every chunk sent
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._sockets: list[socket.socket] = []
        self._closed = False
        self._free_at = 0.0  # when the throttled direction may send again

    def __enter__(self) -> Self:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _close(sock)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2)
                upstream.settimeout(None)
            except OSError:
                _close(client)  # the backend is down: the agent sees the connection drop
                continue
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()
            threading.Thread(target=_copy, args=(upstream, client), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket) -> None:
        """Agent to backend: forward, reading request heads and counting chunk bodies."""
        head = b""
        body_left = 0
        counting = False
        try:
            while data := client.recv(_READ):
                while data:
                    if body_left:
                        piece, data = data[:body_left], data[body_left:]
                        body_left -= len(piece)
                        self._forward(upstream, piece, counting)
                        continue
                    head += data
                    data = b""
                    end = head.find(b"\r\n\r\n")
                    if end < 0:
                        continue
                    request, data = head[: end + 4], head[end + 4 :]
                    head = b""
                    body_left, counting = self._read_head(request)
                    self._forward(upstream, request, False)
        except OSError:
            pass
        finally:
            _close(client)
            _close(upstream)

    def _read_head(self, request: bytes) -> tuple[int, bool]:
        length = 0
        for line in request.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
            elif name.strip().lower() == b"transfer-encoding":
                self.errors.append(f"unexpected Transfer-Encoding: {value.strip()!r}")
        match = _CHUNK_LINE.match(request)
        if match:
            with self._lock:
                self.chunks.append((match[1].decode(), int(match[2])))
        return length, match is not None

    def _forward(self, upstream: socket.socket, data: bytes, counted: bool) -> None:
        if self.rate_bps:
            with self._lock:
                now = time.monotonic()
                self._free_at = max(self._free_at, now) + len(data) / self.rate_bps
                delay = self._free_at - now
            time.sleep(delay)
        upstream.sendall(data)
        if counted:
            with self._lock:
                self.chunk_bytes += len(data)


def _copy(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(_READ):
            target.sendall(data)
    except OSError:
        pass
    finally:
        _close(source)
        _close(target)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
