"""A releases folder over real HTTP on 127.0.0.1, like a GitHub release's download URL:
files by name (archives, ``SHA256SUMS``), a log of the paths asked for, and ways to
misbehave (cut a file short, go down)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class ReleaseServer:
    """What the server holds and what it was asked for; ``url`` is its base URL."""

    files: dict[str, bytes]
    truncated: set[str] = field(default_factory=set)
    """Files whose answer promises their full length but stops halfway."""
    requests: list[str] = field(default_factory=list)
    url: str = ""
    _server: ThreadingHTTPServer | None = None

    def stop(self) -> None:
        """Go down: the port refuses connections from now on."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@contextmanager
def release_server(files: dict[str, bytes], prefix: str = "") -> Iterator[ReleaseServer]:
    """Serve ``files`` under ``http://127.0.0.1:<port><prefix>/``."""
    state = ReleaseServer(dict(files))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            name = self.path.removeprefix(prefix + "/")
            body = state.files.get(name) if self.path.startswith(prefix + "/") else None
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if name in state.truncated else body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state._server = server
    state.url = f"http://127.0.0.1:{server.server_address[1]}{prefix}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stop()
        thread.join(timeout=5)
