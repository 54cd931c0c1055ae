"""Backend dispatch benchmarks: poll cost and latency, dispatch latency, key validation, drain.

Run from the repository root with the project's virtualenv; each benchmark runs on
SQLite and, given an admin URL of a PostgreSQL server, on PostgreSQL too:

    url=$(scripts/postgres start /tmp/bench-pg)
    .venv/bin/python benchmarks/dispatch.py --postgres-url "$url" [--only cpu,poll,dispatch,...]
    scripts/postgres stop /tmp/bench-pg

``cpu`` is the server's CPU time per plain poll (psutil: user + system of the server
process while 20 agents poll back to back); ``--profile DIR`` also samples the server
with py-spy meanwhile (``benchmarks/profile_support.py``), keeps the stacks in DIR and
prints where the busy time went.

The server is the real ``training-backend serve`` process; the agents are asyncio tasks
in this process speaking real HTTP over loopback (so both share the machine's cores).
Results go to stdout as Markdown rows; docs/benchmarks.md keeps the measured ones.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
from sqlalchemy import create_engine, insert
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from profile_support import cpu_s, sampled, top_of_profile  # noqa: E402

from tests.support.backend import BackendProcess, start_backend  # noqa: E402
from tests.support.crowd import drain  # noqa: E402
from training_backend.db import (  # noqa: E402
    create_db_engine,
    create_session_factory,
    upgrade_database,
)
from training_backend.db.models import ApiKey  # noqa: E402
from training_backend.db.types import utcnow  # noqa: E402
from training_backend.security import display_prefix, generate_api_key, hash_secret  # noqa: E402
from training_backend.services.api_keys import authenticate_api_key  # noqa: E402
from training_backend.services.users import create_user  # noqa: E402

POLL = "/api/training/agent/poll"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextmanager
def database(kind: str, admin_url: str | None, tmp: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp / f'bench-{uuid.uuid4().hex[:6]}.sqlite3'}"
        return
    assert admin_url
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.dispose()


@contextmanager
def server_process(url: str, tmp: Path) -> Iterator[tuple[BackendProcess, str]]:
    """A served backend on ``url`` and a training key of a fresh user."""
    os.environ["TRAINING_BACKEND_RATE_LIMIT_PER_MINUTE"] = "100000000"
    os.environ["TRAINING_BACKEND_RATE_LIMIT_BURST"] = "100000000"
    with start_backend(tmp / uuid.uuid4().hex[:6], database_url=url) as backend:
        backend.cli("users", "create", "bench")
        key = backend.cli("keys", "create", "--user", "bench").strip().splitlines()[-1]
        yield backend, key


@contextmanager
def server(url: str, tmp: Path) -> Iterator[tuple[str, str]]:
    """A served backend's URL and a training key of a fresh user."""
    with server_process(url, tmp) as (backend, key):
        yield backend.url, key


async def poll_latency(
    base: str,
    key: str,
    agents: int,
    seconds: float,
    on_start: Callable[[], None] = lambda: None,
    on_stop: Callable[[], None] = lambda: None,
) -> list[float]:
    """Latencies of back-to-back polls by ``agents`` agents for ``seconds``.

    Each agent has a client of its own, as real agents do: one shared client's
    connection pool costs the benchmark process several ms per request at 100
    connections, which capped the first runs at about 110 polls/s whatever the server did.
    Each agent's first poll (connection, row insert) happens before the clock starts;
    ``on_start`` and ``on_stop`` run as the clock starts and stops.
    """
    latencies: list[float] = []
    stop_at = 0.0
    connected = asyncio.Barrier(agents + 1)
    go = asyncio.Event()

    async def agent(n: int) -> None:
        headers = {"Authorization": f"Bearer {key}", "X-Agent-ID": f"agent_bench{n:06d}"}
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            # Not counted: the connection and the agent's first poll (its row's insert).
            (await http.get(POLL, headers=headers)).raise_for_status()
            await connected.wait()
            await go.wait()
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                answer = await http.get(POLL, headers=headers)
                latencies.append(time.perf_counter() - started)
                answer.raise_for_status()

    async def start() -> None:
        nonlocal stop_at
        await connected.wait()
        on_start()
        stop_at = time.monotonic() + seconds
        go.set()

    await asyncio.gather(start(), *(agent(n) for n in range(agents)))
    on_stop()
    return latencies


def run_cpu(
    kind: str, admin_url: str | None, tmp: Path, seconds: float, profile: Path | None
) -> None:
    """Server CPU per plain poll: 20 agents polling back to back for ``seconds``."""
    with ExitStack() as stack:
        url = stack.enter_context(database(kind, admin_url, tmp))
        backend, key = stack.enter_context(server_process(url, tmp))
        pid = backend.process.pid
        if profile is not None:
            out = stack.enter_context(sampled(pid, profile / f"poll-{kind}.txt"))
        cpu: list[float] = []
        lat = asyncio.run(
            poll_latency(
                backend.url,
                key,
                20,
                seconds,
                lambda: cpu.append(cpu_s(pid)),
                lambda: cpu.append(cpu_s(pid)),
            )
        )
    per_poll_ms = (cpu[1] - cpu[0]) / len(lat) * 1000
    print(f"| poll cost | {kind} | 20 agents, plain polls, {seconds:.0f} s |", end="")
    print(f" {len(lat)} polls | server CPU {per_poll_ms:.2f} ms per poll |", end="")
    print(f" p50 {pct(lat, 0.5) * 1000:.1f} ms |", flush=True)
    if profile is not None:
        print("\n".join(top_of_profile(out)), flush=True)


async def dispatch_latency(base: str, key: str, *, long_poll: bool, rounds: int) -> list[float]:
    """Submit a job, measure until one agent holds it (claimed); one agent."""
    headers = {"Authorization": f"Bearer {key}", "X-Agent-ID": "agent_dispatch0001"}
    params = {"wait_seconds": 30} if long_poll else {}
    results: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        for _ in range(rounds):
            claimed: asyncio.Future[float] = asyncio.get_running_loop().create_future()

            async def agent(claimed: asyncio.Future[float] = claimed) -> None:
                # Plain polling starts at a random phase of its 10 s interval.
                if not long_poll:
                    await asyncio.sleep(random.uniform(0, 10))
                while True:
                    job = (await http.get(POLL, headers=headers, params=params)).json()["job"]
                    if job is not None:
                        await http.post(f"/api/training/agent/claim/{job['id']}", headers=headers)
                        claimed.set_result(time.perf_counter())
                        return
                    if not long_poll:
                        await asyncio.sleep(10)

            task = asyncio.create_task(agent())
            await asyncio.sleep(0.5 if long_poll else 0)
            submitted = time.perf_counter()
            await http.post("/api/training/jobs", json={"config": {}}, headers=headers)
            results.append(await claimed - submitted)
            await task
    return results


def key_validation(url: str, counts: list[int], checks: int) -> dict[int, float]:
    engine = create_db_engine(url)
    upgrade_database(engine)
    factory = create_session_factory(engine)
    timings: dict[int, float] = {}
    with factory() as db:
        user = create_user(db, name="keys")
        stored = 0
        probe = ""
        for count in counts:
            keys = [generate_api_key() for _ in range(count - stored)]
            rows = [
                {
                    "id": str(uuid.uuid4()),
                    "user_id": user.id,
                    "name": "k",
                    "prefix": display_prefix(k),
                    "key_hash": hash_secret(k),
                    "scopes": ["training"],
                    "created_at": utcnow(),
                    "last_used_at": utcnow(),
                }
                for k in keys
            ]
            db.execute(insert(ApiKey), rows)
            db.commit()
            stored = count
            probe = probe or keys[0]
            sample = [probe, keys[-1]]
            started = time.perf_counter()
            for i in range(checks):
                authenticate_api_key(db, key=sample[i % 2], scope="training", now=utcnow())
                db.commit()
            timings[count] = (time.perf_counter() - started) / checks
    engine.dispose()
    return timings


async def submit_jobs(base: str, key: str, count: int) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        for _ in range(count):
            (
                await http.post("/api/training/jobs", json={"config": {}}, headers=headers)
            ).raise_for_status()


def run_poll(kind: str, admin_url: str | None, tmp: Path, seconds: float) -> None:
    for agents in (100, 500):
        with database(kind, admin_url, tmp) as url, server(url, tmp) as (base, key):
            lat = asyncio.run(poll_latency(base, key, agents, seconds))
        p50, p99 = pct(lat, 0.5) * 1000, pct(lat, 0.99) * 1000
        rate = len(lat) / seconds
        print(f"| poll | {kind} | {agents} agents | p50 {p50:.1f} ms | p99 {p99:.1f} ms |", end="")
        print(f" {rate:.0f} polls/s |", flush=True)


def run_dispatch(kind: str, admin_url: str | None, tmp: Path) -> None:
    with database(kind, admin_url, tmp) as url, server(url, tmp) as (base, key):
        for long_poll, rounds in ((True, 20), (False, 5)):
            lat = asyncio.run(dispatch_latency(base, key, long_poll=long_poll, rounds=rounds))
            mode = "long poll (30 s hold)" if long_poll else "plain poll every 10 s"
            median, worst = statistics.median(lat) * 1000, max(lat) * 1000
            print(f"| dispatch | {kind} | {mode} | median {median:.0f} ms |", end="")
            print(f" max {worst:.0f} ms | {rounds} jobs |", flush=True)


def run_keys(kind: str, admin_url: str | None, tmp: Path) -> None:
    with database(kind, admin_url, tmp) as url:
        for count, mean in key_validation(url, [10, 1_000, 10_000], 2_000).items():
            print(f"| key validation | {kind} | {count} keys | {mean * 1e6:.0f} µs |", flush=True)


def run_drain(kind: str, admin_url: str | None, tmp: Path) -> None:
    with database(kind, admin_url, tmp) as url, server(url, tmp) as (base, key):
        asyncio.run(submit_jobs(base, key, 1_000))
        started = time.perf_counter()
        result = asyncio.run(drain(base, key, 50))
        elapsed = time.perf_counter() - started
    once = len(result.claims) == 1_000 and set(result.claims.values()) == {1}
    print(f"| drain | {kind} | 50 agents, 1,000 jobs | {elapsed:.1f} s |", end="")
    print(f" claimed exactly once: {once} | {result.lost_races} lost races |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_pg = os.environ.get("TRAINING_BACKEND_TEST_POSTGRES_URL")
    parser.add_argument("--postgres-url", default=default_pg, help="admin URL of a server")
    parser.add_argument("--only", default="cpu,poll,dispatch,keys,drain")
    parser.add_argument("--seconds", type=float, default=6.0, help="duration of each poll run")
    parser.add_argument("--profile", type=Path, help="py-spy the server in `cpu`, into this dir")
    args = parser.parse_args()
    only = set(args.only.split(","))
    kinds = ["sqlite"] + (["postgresql"] if args.postgres_url else [])
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for kind in kinds:
            if "cpu" in only:
                run_cpu(kind, args.postgres_url, tmp, args.seconds, args.profile)
            if "poll" in only:
                run_poll(kind, args.postgres_url, tmp, args.seconds)
            if "dispatch" in only:
                run_dispatch(kind, args.postgres_url, tmp)
            if "keys" in only:
                run_keys(kind, args.postgres_url, tmp)
            if "drain" in only:
                run_drain(kind, args.postgres_url, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
