"""The real backend as a subprocess, for end-to-end tests.

    with start_backend(tmp_path) as backend:
        backend.cli("users", "create", "alice")
        key = backend.cli("keys", "create", "--user", "alice").strip()
        httpx.get(f"{backend.url}/api/training/agent/poll", headers=...)

``start_backend`` runs ``python -m training_backend.cli serve`` on a free loopback port
with a fresh SQLite file, waits until ``/healthz`` answers and stops the process (terminate,
wait, kill) when the block ends. ``stop_server()`` and ``start_again()`` make an outage:
the same port and the same database, so clients see one backend go away and come back.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

#: A healthy start takes about a second; CI runs several pytest workers on two cores,
#: where a start behind a training test has taken over 20 s.
STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
CLI_TIMEOUT_S = 60.0
_PORT_ATTEMPTS = 3


class BackendStartError(RuntimeError):
    """The backend process did not come up; the message carries its output."""


class CliFailed(AssertionError):
    """A ``training-backend`` command exited non-zero; carries its exit code and stderr."""

    def __init__(self, args: tuple[str, ...], returncode: int, stderr: str) -> None:
        super().__init__(f"training-backend {' '.join(args)} exited {returncode}: {stderr}")
        self.returncode = returncode
        self.stderr = stderr


@dataclass
class BackendProcess:
    """A running backend: its base URL, its database, and its CLI on that database."""

    url: str
    database_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] | None = None

    def stop_server(self) -> None:
        """Stop the server process (the database stays): the start of an outage."""
        stop(self.process)

    def start_again(self) -> None:
        """Serve the same database on the same port again; waits until it is healthy."""
        port = httpx.URL(self.url).port
        if port is None:
            raise BackendStartError(f"{self.url} names no port")
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:  # the old socket may linger a moment before the port is free again
            self.process = _spawn(self.database_url, port, self.log_path, self.env, append=True)
            if _wait_healthy(self.process, self.url):
                return
            if time.monotonic() > deadline:
                raise BackendStartError(f"backend did not restart on {self.url}")
            time.sleep(0.2)

    def cli(self, *args: str, input: str | None = None) -> str:
        """Run ``training-backend ARGS --database-url URL``; returns stdout.

        ``input`` is written to its stdin (``users create NAME --password-stdin``).
        Raises ``CliFailed`` (an ``AssertionError``, with the exit code and stderr) when
        the command fails.
        """
        command = [sys.executable, "-m", "training_backend.cli", *args]
        command += ["--database-url", self.database_url]
        # No terminal on stdin even when the tests run in one: `users create` would prompt.
        done = subprocess.run(
            command,
            input=input,
            stdin=subprocess.DEVNULL if input is None else None,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            env={**os.environ, **(self.env or {})},  # the server's settings, its store
        )
        if done.returncode != 0:
            raise CliFailed(args, done.returncode, done.stderr.strip())
        return done.stdout

    def server_log(self) -> str:
        """What the server wrote to stdout and stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _spawn(
    database_url: str,
    port: int,
    log_path: Path,
    env: dict[str, str] | None = None,
    *,
    append: bool = False,
    args: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "training_backend.cli", "serve"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--database-url", database_url]
    command += ["--log-level", "warning", *args]
    with log_path.open("ab" if append else "wb") as log:
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )


def _wait_healthy(process: subprocess.Popen[bytes], url: str) -> bool:
    """True once ``/healthz`` answers 200; False if the process exited first."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise BackendStartError(f"backend at {url} not healthy after {STARTUP_TIMEOUT_S:.0f} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate ``process``, wait for it, and kill it if it does not go."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


def _start(
    tmp_path: Path,
    database_url: str,
    port: int | None,
    env: dict[str, str] | None,
    args: tuple[str, ...] = (),
) -> BackendProcess:
    log_path = tmp_path / "backend.log"
    for _ in range(_PORT_ATTEMPTS):
        chosen = port or free_port()
        url = f"http://127.0.0.1:{chosen}"
        process = _spawn(database_url, chosen, log_path, env, args=args)
        try:
            healthy = _wait_healthy(process, url)
        except BackendStartError as exc:
            stop(process)
            raise BackendStartError(f"{exc}; its output:\n{log_path.read_text()}") from None
        if healthy:
            return BackendProcess(url, database_url, process, log_path, env)
        # Exited early: most likely someone took the port in between; try another one.
    output = log_path.read_text(encoding="utf-8", errors="replace")
    raise BackendStartError(f"backend exited during startup; its output:\n{output}")


@contextmanager
def start_backend(
    tmp_path: Path,
    *,
    database_url: str | None = None,
    port: int | None = None,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
) -> Iterator[BackendProcess]:
    """A backend process on ``port`` (default: a free one), stopped afterwards.

    Its database is ``database_url`` if given, else a new ``tmp_path/backend.sqlite3``;
    ``env`` is added to its environment (``TRAINING_BACKEND_*`` settings); ``args`` go
    to ``serve`` (``--workers 2``).
    """
    tmp_path.mkdir(parents=True, exist_ok=True)
    database_url = database_url or f"sqlite:///{tmp_path / 'backend.sqlite3'}"
    # Artifacts in the test's folder, whatever the database (PostgreSQL has no folder).
    env = {"TRAINING_BACKEND_ARTIFACTS_DIR": str(tmp_path / "artifacts"), **(env or {})}
    backend = _start(tmp_path, database_url, port, env, args)
    try:
        yield backend
    finally:
        stop(backend.process)
