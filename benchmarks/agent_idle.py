"""An idle agent: its memory, its CPU and its requests per minute, with and without long poll.

A real backend and a real agent (default settings: the backend's 10 s poll interval,
the agent's 2 s floor) run as processes with no job to take. After the agent is
connected and has settled, psutil samples the agent process once a second for
``--seconds`` (60); the requests it sent are the polls its status API counted (an idle
agent sends nothing else). Run twice: against the backend as it is (long poll when it
offers it) and against the same backend with ``long_poll`` not advertised.

    .venv/bin/python benchmarks/agent_idle.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from agent_support import (
    agent_env,
    agent_status,
    backend,
    cpu_seconds,
    machine,
    start_agent,
    user_and_key,
    wait_connected,
)

SETTLE_S = 5.0


def measure(workdir: Path, *, long_poll: bool, seconds: float) -> dict[str, Any]:
    with backend(workdir, long_poll=long_poll) as server:
        key = user_and_key(server, "idle")
        home = workdir / "agent"
        agent = start_agent(agent_env(home, url=server.url, key=key), log=workdir / "agent.log")
        try:
            first = wait_connected(home)
            time.sleep(SETTLE_S)
            process = psutil.Process(agent.pid)
            polls_before = (agent_status(home) or first)["counters"]["polls"]
            cpu_before, started = cpu_seconds(process), time.monotonic()
            rss = []
            while time.monotonic() - started < seconds:
                rss.append(process.memory_info().rss)
                time.sleep(1.0)
            elapsed = time.monotonic() - started
            cpu = cpu_seconds(process) - cpu_before
            snapshot = agent_status(home) or first
            polls = snapshot["counters"]["polls"] - polls_before
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(30)
    return {
        "features": snapshot["connection"]["features"],
        "long_poll": "long_poll" in snapshot["connection"]["features"],
        "rss_mib_mean": statistics.mean(rss) / 2**20,
        "rss_mib_max": max(rss) / 2**20,
        "cpu_percent": 100.0 * cpu / elapsed,
        "cpu_s": cpu,
        "seconds": elapsed,
        "requests_per_minute": polls * 60.0 / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print("| backend | long poll in use | RSS mean / max (MiB) | CPU | requests/min |")
    print("|---|---|---|---|---|")
    for long_poll in (True, False):
        with tempfile.TemporaryDirectory(prefix="agent-idle-") as tmp:
            r = measure(Path(tmp), long_poll=long_poll, seconds=args.seconds)
        name = "as is" if long_poll else "long_poll not advertised"
        print(
            f"| {name} | {'yes' if r['long_poll'] else 'no'} "
            f"| {r['rss_mib_mean']:.1f} / {r['rss_mib_max']:.1f} "
            f"| {r['cpu_percent']:.2f} % ({r['cpu_s']:.2f} s in {r['seconds']:.0f} s) "
            f"| {r['requests_per_minute']:.1f} |"
        )


if __name__ == "__main__":
    main()
