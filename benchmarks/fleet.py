"""Fleet benchmarks (issue 20): thousands of long-polling agents, and a crowd draining a queue.

Run from the repository root with the project's virtualenv:

    url=$(scripts/postgres start /tmp/bench-pg)
    .venv/bin/python benchmarks/fleet.py --postgres-url "$url" [--only idle,drain] \
        [--agents 1000,5000] [--jobs 10000]
    scripts/postgres stop /tmp/bench-pg

``idle``: N simulated agents, one connection each, hold long polls (``wait_seconds=30``)
against one backend process on SQLite, or two processes on one PostgreSQL database
(agents alternate between them; jobs are submitted through the first). Measured, in
this order:

- the backend's CPU while all of them wait (user + system of its processes over 30 s,
  from 35 s after they began: each agent's poll ends once in that time and it polls
  again, as real agents do);
- the answer time of plain polls by 20 probe agents (10 a second each) meanwhile;
- dispatch: 20 jobs submitted one by one, from the submission to the held poll that
  answers with it (p50, p99; every job is claimed);
- saturation: every agent polls back to back (plain polls) for 10 s: polls per second.

``drain``: ``--jobs`` jobs queued, then 100 agents poll, claim and report each job done
until a poll finds nothing: lost claims (409 ``ALREADY_CLAIMED``) per job, the total
time, and whether every job was claimed exactly once.

The agents are asyncio tasks in this process on a minimal HTTP/1.1 client (one
keep-alive connection per agent: an ``httpx`` client per agent costs too much at 5,000),
so they share the machine's cores with the backend; the file limit is raised to its hard
limit first (the backend processes inherit it). Results go to stdout as Markdown rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dispatch import database, pct  # noqa: E402
from profile_support import cpu_s  # noqa: E402

import tests.support.backend  # noqa: E402
from tests.support.backend import BackendProcess, start_backend  # noqa: E402

# A loaded machine may take longer than the tests' 20 s to migrate and start a backend.
tests.support.backend.STARTUP_TIMEOUT_S = 120.0

POLL = "/api/training/agent/poll"
#: A submission not answered in this long means the backend cannot keep up.
SUBMIT_TIMEOUT_S = 60.0
INFO = json.dumps({"labels": [], "gpus": [], "max_jobs": 1, "busy_jobs": 0})
UNLIMITED = {
    "TRAINING_BACKEND_RATE_LIMIT_PER_MINUTE": "100000000",
    "TRAINING_BACKEND_RATE_LIMIT_BURST": "100000000",
    "TRAINING_BACKEND_JOB_RATE_LIMIT_PER_MINUTE": "100000000",
    "TRAINING_BACKEND_JOB_RATE_LIMIT_BURST": "100000000",
    "TRAINING_BACKEND_MAX_LONG_POLLS_PER_KEY": "100000",
}


def raise_file_limit() -> int:
    """The soft limit on open files raised to the hard one; returns it."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Connection:
    """One keep-alive HTTP/1.1 connection to the backend, as lean as a client can be."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parsed = httpx.URL(url)
        self.host, self.port = parsed.host, parsed.port or 80
        lines = [f"Host: {self.host}", *(f"{k}: {v}" for k, v in headers.items())]
        self.head = "".join(line + "\r\n" for line in lines)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: object = None, auth: str | None = None
    ) -> tuple[int, bytes]:
        """Status and body of one request (reconnects once if the server closed it);
        ``auth``: another bearer token for this request (a job token)."""
        for attempt in (1, 2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            try:
                return await self._exchange(method, path, body, auth)
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(
        self, method: str, path: str, body: object, auth: str | None
    ) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        data = b"" if body is None else json.dumps(body).encode()
        head = self.head
        if auth is not None:
            kept = [line for line in head.split("\r\n") if line and not line.startswith("Auth")]
            head = "".join(f"{line}\r\n" for line in [*kept, f"Authorization: Bearer {auth}"])
        extra = "Content-Type: application/json\r\n" if body is not None else ""
        request = f"{method} {path} HTTP/1.1\r\n{head}{extra}Content-Length: {len(data)}\r\n"
        self.writer.write(request.encode() + b"\r\n" + data)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionResetError("closed by the server")
        length, closing = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                closing = True
        payload = await self.reader.readexactly(length) if length else b""
        if closing:
            self.close()
        return int(status_line.split()[1]), payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def agent_connection(url: str, key: str, n: int) -> Connection:
    headers = {"Authorization": f"Bearer {key}", "X-Agent-ID": f"agent_fleet{n:06d}"}
    return Connection(url, headers | {"X-Agent-Info": INFO})


@contextmanager
def backends(
    kind: str, admin_url: str | None, tmp: Path
) -> Iterator[tuple[list[BackendProcess], str]]:
    """One backend on SQLite, two on one PostgreSQL database; and a fresh user's key."""
    count = 1 if kind == "sqlite" else 2
    with ExitStack() as stack:
        url = stack.enter_context(database(kind, admin_url, tmp))
        served = [
            stack.enter_context(start_backend(tmp / f"{kind}-{n}", database_url=url, env=UNLIMITED))
            for n in range(count)
        ]
        served[0].cli("users", "create", "fleet", "--no-password")
        key = served[0].cli("keys", "create", "--user", "fleet").strip().splitlines()[-1]
        yield served, key


def cpu_of(served: list[BackendProcess]) -> float:
    return sum(cpu_s(backend.process.pid) for backend in served)


class Fleet:
    """N agents, each on its own connection, long-polling until told to poll back to back."""

    def __init__(self, served: list[BackendProcess], key: str, agents: int) -> None:
        urls = [backend.url for backend in served]
        self.connections = [agent_connection(urls[n % len(urls)], key, n) for n in range(agents)]
        self.received: dict[str, float] = {}  # job id -> when its poll answered
        self.claims: Counter[int] = Counter()
        self.polls = 0
        self.saturate = False
        self.saturated: list[float] = []

    async def connect(self) -> None:
        """Every agent's first plain poll (its connection, its row), 200 at a time."""
        gate = asyncio.Semaphore(200)

        async def first(connection: Connection) -> None:
            async with gate:
                status, _ = await connection.request("GET", POLL)
                assert status == 200, status

        await asyncio.gather(*(first(c) for c in self.connections))

    async def agent(self, connection: Connection) -> None:
        while True:
            if self.saturate:
                started = time.perf_counter()
                status, body = await connection.request("GET", POLL)
                self.saturated.append(time.perf_counter() - started)
            else:
                status, body = await connection.request("GET", f"{POLL}?wait_seconds=30")
            assert status == 200, (status, body[:200])
            self.polls += 1
            job = json.loads(body)["job"]
            if job is not None:
                self.received[job["id"]] = time.perf_counter()
                claimed, _ = await connection.request(
                    "POST", f"/api/training/agent/claim/{job['id']}"
                )
                self.claims[claimed] += 1


async def probe(served: list[BackendProcess], key: str, seconds: float) -> list[float]:
    """Plain polls of 20 other agents, 10 a second each, for ``seconds``: their answer times."""
    latencies: list[float] = []

    async def one(n: int) -> None:
        connection = agent_connection(served[n % len(served)].url, key, 900_000 + n)
        await connection.request("GET", POLL)
        stop_at = time.monotonic() + seconds
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            status, _ = await connection.request("GET", POLL)
            latencies.append(time.perf_counter() - started)
            assert status == 200
            await asyncio.sleep(max(0.0, 0.1 - (time.perf_counter() - started)))
        connection.close()

    await asyncio.gather(*(one(n) for n in range(20)))
    return latencies


async def run_fleet(kind: str, served: list[BackendProcess], key: str, agents: int) -> None:
    fleet = Fleet(served, key, agents)
    began = time.perf_counter()
    await fleet.connect()
    connected_s = time.perf_counter() - began
    tasks = [asyncio.create_task(fleet.agent(c)) for c in fleet.connections]
    # Steady state: every agent's first hold (begun as the backend got to it) has ended
    # and it holds its next one, so the window sees polls end and start again as they
    # would in a fleet, not the fleet's start.
    await asyncio.sleep(35)
    label = f"| {kind} | {len(served)} process{'es' if len(served) > 1 else ''} | {agents} agents |"

    before, polls, started = cpu_of(served), fleet.polls, time.monotonic()
    own = time.process_time()
    await asyncio.sleep(30)
    wall = time.monotonic() - started
    cpu = (cpu_of(served) - before) / wall
    client = (time.process_time() - own) / wall
    print(f"| waiting {label} backend CPU {cpu * 100:.1f} % of a core |", end="")
    print(f" {(fleet.polls - polls) / wall:.0f} held polls ended/s (30 s holds) |", end="")
    print(f" client CPU {client * 100:.0f} % | connect {connected_s:.1f} s |", flush=True)

    answers = await probe(served, key, 10)
    print(f"| plain poll while they wait {label} p50 {pct(answers, 0.5) * 1000:.1f} ms |", end="")
    print(f" p99 {pct(answers, 0.99) * 1000:.1f} ms | {len(answers)} polls |", flush=True)

    submitter = Connection(served[0].url, {"Authorization": f"Bearer {key}"})
    submitted: dict[str, float] = {}
    for _ in range(20):
        sent = time.perf_counter()
        try:  # a backend that cannot keep up with the fleet never answers: say so
            request = submitter.request("POST", "/api/training/jobs", {"config": {}})
            status, body = await asyncio.wait_for(request, SUBMIT_TIMEOUT_S)
        except TimeoutError:
            print(f"| dispatch {label} a submission not answered in {SUBMIT_TIMEOUT_S:.0f} s |")
            print(f"| after {len(submitted)} jobs: backend saturated; no saturation run |")
            break
        assert status == 201, body[:200]
        submitted[json.loads(body)["job"]["id"]] = sent
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)
    submitter.close()
    lat = [fleet.received[job] - sent for job, sent in submitted.items() if job in fleet.received]
    if len(submitted) == 20:
        p50, p99 = pct(lat, 0.5) * 1000, pct(lat, 0.99) * 1000
        print(f"| dispatch {label} p50 {p50:.0f} ms | p99 {p99:.0f} ms |", end="")
        print(f" {len(lat)}/20 jobs answered | claims {dict(fleet.claims)} |", flush=True)
        await saturate(fleet, served, label)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for connection in fleet.connections:
        connection.close()


async def saturate(fleet: Fleet, served: list[BackendProcess], label: str) -> None:
    """Every agent polls back to back (plain polls) for 10 s: polls per second."""
    fleet.saturate = True
    await asyncio.sleep(31)  # every held poll has ended: all are polling back to back now
    count, before, started = len(fleet.saturated), cpu_of(served), time.monotonic()
    await asyncio.sleep(10)
    wall = time.monotonic() - started
    sample = fleet.saturated[count:]
    per_poll = (cpu_of(served) - before) / len(sample) * 1000
    rate, p99 = len(sample) / wall, pct(sample, 0.99) * 1000
    print(f"| saturation {label} {rate:.0f} polls/s | p99 {p99:.0f} ms |", end="")
    print(f" backend CPU {per_poll:.2f} ms per poll |", flush=True)


async def submit_all(url: str, key: str, jobs: int) -> None:
    queue = iter(range(jobs))

    async def submitter() -> None:
        connection = Connection(url, {"Authorization": f"Bearer {key}"})
        for _ in queue:
            status, body = await connection.request("POST", "/api/training/jobs", {"config": {}})
            assert status == 201, body[:200]
        connection.close()

    await asyncio.gather(*(submitter() for _ in range(10)))


async def drain(served: list[BackendProcess], key: str, agents: int) -> tuple[Counter[str], int]:
    """``agents`` agents poll, claim and report done until a poll finds nothing."""
    claims: Counter[str] = Counter()
    lost = 0

    async def agent(n: int) -> None:
        nonlocal lost
        url = served[n % len(served)].url
        connection = agent_connection(url, key, n)
        while True:
            status, body = await connection.request("GET", POLL)
            assert status == 200, body[:200]
            job = json.loads(body)["job"]
            if job is None:
                break
            status, body = await connection.request(
                "POST", f"/api/training/agent/claim/{job['id']}"
            )
            if status == 409:
                lost += 1
                continue
            assert status == 200, body[:200]
            claims[job["id"]] += 1
            token = json.loads(body)["job_token"]
            done = {"status": "completed"}
            path = f"/api/training/local/{job['id']}/status"
            status, body = await connection.request("PATCH", path, done, auth=token)
            assert status == 200, body[:200]
        connection.close()

    await asyncio.gather(*(agent(n) for n in range(agents)))
    return claims, lost


def run_drain(kind: str, admin_url: str | None, tmp: Path, jobs: int) -> None:
    with backends(kind, admin_url, tmp) as (served, key):
        started = time.perf_counter()
        asyncio.run(submit_all(served[0].url, key, jobs))
        submitted_s = time.perf_counter() - started
        started = time.perf_counter()
        try:
            claims, lost = asyncio.run(drain(served, key, 100))
        except AssertionError:
            for backend in served:  # what went wrong, in the backend's words
                print("\n".join(backend.server_log().splitlines()[-40:]), file=sys.stderr)
            raise
        elapsed = time.perf_counter() - started
    once = len(claims) == jobs and set(claims.values()) == {1}
    print(f"| drain | {kind} | {len(served)} process(es), 100 agents, {jobs} jobs |", end="")
    print(f" {elapsed:.1f} s ({jobs / elapsed:.0f} jobs/s) | lost claims {lost}", end="")
    print(f" ({lost / jobs:.3f} per job) | claimed exactly once: {once} |", end="")
    print(f" submitting took {submitted_s:.1f} s |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_pg = os.environ.get("TRAINING_BACKEND_TEST_POSTGRES_URL")
    parser.add_argument("--postgres-url", default=default_pg, help="admin URL of a server")
    parser.add_argument("--only", default="idle,drain")
    parser.add_argument("--kinds", default="sqlite,postgresql")
    parser.add_argument("--agents", default="1000,5000", help="fleet sizes for `idle`")
    parser.add_argument("--jobs", type=int, default=10_000, help="queue length for `drain`")
    args = parser.parse_args()
    only = set(args.only.split(","))
    kinds = [k for k in args.kinds.split(",") if k == "sqlite" or args.postgres_url]
    limit = raise_file_limit()
    print(f"<!-- file limit {limit}; load average before: {os.getloadavg()} -->", flush=True)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for kind in kinds:
            if "idle" in only:
                for agents in map(int, args.agents.split(",")):
                    with backends(kind, args.postgres_url, tmp) as (served, key):
                        asyncio.run(run_fleet(kind, served, key, agents))
                    print(f"<!-- load average: {os.getloadavg()} -->", flush=True)
            if "drain" in only:
                run_drain(kind, args.postgres_url, tmp, args.jobs)
                print(f"<!-- load average: {os.getloadavg()} -->", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
