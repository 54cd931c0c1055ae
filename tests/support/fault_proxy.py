"""A fault-injecting HTTP proxy, run as a real process between the agent and the backend.

    script = {"seed": 7, "rules": [{"paths": "^/api/training/local/", "every": 4,
                                    "faults": [{"kind": "reset_after"}]}]}
    with start_fault_proxy(tmp_path, backend.url, script) as proxy:
        env = agent_env(home, backend_url=proxy.url, api_key=key)
        ...
        assert proxy.injected()  # what it did, one dict per fault

Every request is read whole (h11), then the first rule whose ``paths`` (a regex on the
path), ``methods``, ``min_bytes``, ``contains`` (of the body) and ``header`` (a ``[name,
value]`` the request carries) match decides: the
rule's n-th matching request is faulted when ``n % every == 0``, or with probability
``rate``, at most ``limit`` times; the fault is drawn from ``faults`` (or taken in turn
with ``cycle``).
Draws come from a generator seeded with the script's seed and the request itself
(method, path, body and how often that same request was seen), so the same request
meets the same fate in every run whatever else runs at the same time, and a retry
draws afresh. Fault kinds:

| kind | what the agent sees |
|---|---|
| ``reset_before`` | the connection reset; the backend never saw the request |
| ``reset_after`` | the backend applied the request; the connection reset before the answer |
| ``status`` | ``status`` (409, 413, 422, 429, 5xx) instead of forwarding (+ ``retry_after``) |
| ``delay`` | forwarded after ``min_s`` (default 0) to ``max_s`` (default 2) seconds |
| ``truncate`` | the backend applied it; half the answer's body, then the connection closes |
| ``garble`` | the backend applied it; the answer's body replaced by as many non-JSON bytes |

Each fault is appended to the log as one JSON line: kind, method, path, status and, for
a JSON request body, the body, so a test can tell exactly what a refusal dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import re
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11
import httpx

# Hop-by-hop and framing headers: the proxy frames each side itself.
_DROPPED = {
    b"connection",
    b"keep-alive",
    b"transfer-encoding",
    b"content-length",
    b"content-encoding",
    b"host",
}
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]  # status, headers, body
UPSTREAM_TIMEOUT_S = 70.0  # longer than the longest long poll (30 s) plus its margin
START_TIMEOUT_S = 20.0


@dataclass
class Rule:
    """Which requests a fault may hit, how often, and which faults."""

    paths: re.Pattern[str]
    faults: list[dict[str, Any]]
    methods: frozenset[str] | None = None
    every: int | None = None
    rate: float = 0.0
    min_bytes: int = 0
    contains: bytes = b""
    header: tuple[bytes, bytes] | None = None
    limit: int | None = None
    cycle: bool = False
    seen: int = 0
    hits: int = 0

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Rule:
        methods = raw.get("methods")
        name, value = raw.get("header") or (None, None)
        return cls(
            paths=re.compile(raw.get("paths", "")),
            faults=list(raw["faults"]),
            methods=frozenset(methods) if methods else None,
            every=raw.get("every"),
            rate=float(raw.get("rate", 0.0)),
            min_bytes=int(raw.get("min_bytes", 0)),
            contains=str(raw.get("contains", "")).encode(),
            header=(str(name).lower().encode(), str(value).encode()) if name else None,
            limit=raw.get("limit"),
            cycle=bool(raw.get("cycle", False)),
        )

    def draw(self, rng: random.Random) -> dict[str, Any] | None:
        """The fault for this rule's next matching request, or None."""
        self.seen += 1
        hit = self.seen % self.every == 0 if self.every else rng.random() < self.rate
        if not hit or (self.limit is not None and self.hits >= self.limit):
            return None
        self.hits += 1
        return (
            self.faults[(self.hits - 1) % len(self.faults)]
            if self.cycle
            else rng.choice(self.faults)
        )

    def matches(
        self, method: str, path: str, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()
    ) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        if self.header is not None and self.header not in [(k.lower(), v) for k, v in headers]:
            return False
        if len(body) < self.min_bytes or self.contains not in body:
            return False
        return bool(self.paths.search(path))


@dataclass
class Faults:
    """The script: picks the fault (or None) for each request."""

    seed: int
    rules: list[Rule]
    log_path: Path
    repeats: Counter[str] = field(default_factory=Counter)

    def pick(
        self, method: str, path: str, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()
    ) -> tuple[dict[str, Any] | None, random.Random]:
        key = f"{method} {path} {hashlib.sha256(body).hexdigest()}"
        self.repeats[key] += 1
        rng = random.Random(f"{self.seed}:{key}:{self.repeats[key]}")
        for rule in self.rules:
            if not rule.matches(method, path, body, headers):
                continue
            return rule.draw(rng), rng
        return None, rng

    def record(self, fault: dict[str, Any], method: str, path: str, body: bytes) -> None:
        entry: dict[str, Any] = {**fault, "method": method, "path": path}
        try:
            entry["body"] = json.loads(body) if body else None
        except ValueError:
            entry["body"] = None
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")


class Proxy:
    """One listening proxy: reads each request, forwards it or does what the fault says."""

    def __init__(self, upstream: str, faults: Faults) -> None:
        self._faults = faults
        self._upstream = httpx.AsyncClient(base_url=upstream, timeout=UPSTREAM_TIMEOUT_S)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while await self._one(conn, reader, writer):
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _one(
        self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Serve one request; False when the connection is done."""
        received = await _read_request(conn, reader)
        if received is None:
            return False
        request, body = received
        method, target = request.method.decode(), request.target.decode()
        path = target.split("?", 1)[0]
        fault, rng = self._faults.pick(method, path, body, request.headers)
        if fault is not None:
            self._faults.record(fault, method, path, body)
        kind = fault["kind"] if fault else None
        if kind == "reset_before":
            _reset(writer)
            return False
        if kind == "status":
            _send(conn, writer, *_injected(fault or {}))
            return _reusable(conn)
        if kind == "delay":
            low, high = (
                float((fault or {}).get("min_s", 0.0)),
                float((fault or {}).get("max_s", 2.0)),
            )
            await asyncio.sleep(rng.uniform(low, high))
        status, headers, content = await self._forward(method, target, request.headers, body)
        return await _answer(kind, conn, writer, (status, headers, content), rng)

    async def _forward(
        self, method: str, target: str, headers: Sequence[tuple[bytes, bytes]], body: bytes
    ) -> Answer:
        kept = [(k, v) for k, v in headers if k.lower() not in _DROPPED]
        try:
            answer = await self._upstream.request(method, target, headers=kept, content=body)
        except httpx.HTTPError:
            return 502, [(b"content-type", b"application/json")], b'{"error": "upstream down"}'
        back = [
            (k.encode(), v.encode())
            for k, v in answer.headers.items()
            if k.encode().lower() not in _DROPPED
        ]
        return answer.status_code, back, answer.content


async def _read_request(
    conn: h11.Connection, reader: asyncio.StreamReader
) -> tuple[h11.Request, bytes] | None:
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(65536))
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage) and request is not None:
            return request, bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            return None


async def _answer(
    kind: str | None,
    conn: h11.Connection,
    writer: asyncio.StreamWriter,
    answer: Answer,
    rng: random.Random,
) -> bool:
    """Pass the backend's answer on, as the fault says; False when the connection is done."""
    status, headers, content = answer
    if kind == "reset_after":
        _reset(writer)
        return False
    if kind == "garble":
        content = bytes(rng.randrange(0x80, 0x100) for _ in content)
    _send(conn, writer, status, headers, content, cut=kind == "truncate")
    await writer.drain()
    return kind != "truncate" and _reusable(conn)


def _reusable(conn: h11.Connection) -> bool:
    return conn.our_state is h11.DONE and conn.their_state is h11.DONE


def _injected(fault: dict[str, Any]) -> Answer:
    status = int(fault["status"])
    headers = [(b"content-type", b"application/json")]
    if fault.get("retry_after") is not None:
        headers.append((b"retry-after", str(fault["retry_after"]).encode()))
    body = {"error": f"the fault proxy answered {status}", "code": "INJECTED_FAULT"}
    return status, headers, json.dumps(body).encode()


def _send(
    conn: h11.Connection,
    writer: asyncio.StreamWriter,
    status: int,
    headers: list[tuple[bytes, bytes]],
    content: bytes,
    *,
    cut: bool = False,
) -> None:
    """Write one answer; ``cut`` sends half the body under the whole body's length."""
    framed = [*headers, (b"content-length", str(len(content)).encode())]
    events: list[h11.Event] = [h11.Response(status_code=status, headers=framed)]
    events.append(h11.Data(data=content[: len(content) // 2] if cut else content))
    if not cut:
        events.append(h11.EndOfMessage())
    for event in events:
        writer.write(conn.send(event) or b"")


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a dropped connection looks to a client."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _serve(upstream: str, script: dict[str, Any], log_path: Path) -> None:
    faults = Faults(int(script.get("seed", 0)), [Rule.parse(r) for r in script["rules"]], log_path)
    proxy = Proxy(upstream, faults)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"listening {port}", flush=True)
    async with server:
        await server.serve_forever()


# -- the test side ------------------------------------------------------------------------


@dataclass
class FaultProxy:
    """A running proxy process: its URL and the faults it injected so far."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def injected(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        lines = self.log_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]


@contextmanager
def start_fault_proxy(
    tmp_path: Path, upstream: str, script: dict[str, Any]
) -> Iterator[FaultProxy]:
    """A proxy process in front of ``upstream`` driven by ``script``; stopped afterwards."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    script_path = tmp_path / "faults.json"
    script_path.write_text(json.dumps(script))
    log_path, output = tmp_path / "injected.jsonl", tmp_path / "proxy.out"
    command = [sys.executable, "-m", "tests.support.fault_proxy", upstream]
    with output.open("wb") as out:
        process = subprocess.Popen(
            [*command, str(script_path), str(log_path)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield FaultProxy(f"http://127.0.0.1:{_port(process, output)}", process, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _port(process: subprocess.Popen[bytes], output: Path) -> int:
    """The port the proxy printed once it listened."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        found = re.search(r"^listening (\d+)$", output.read_text(), re.MULTILINE)
        if found:
            return int(found.group(1))
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"the fault proxy did not start: {output.read_text()}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="A fault-injecting HTTP proxy for tests.")
    parser.add_argument("upstream")
    parser.add_argument("script", type=Path)
    parser.add_argument("log", type=Path)
    args = parser.parse_args(argv)
    script = json.loads(args.script.read_text())
    asyncio.run(_serve(args.upstream, script, args.log))


if __name__ == "__main__":
    main(sys.argv[1:])
