"""Metric events per second through the agent, and what they cost it in CPU.

A real backend and a real agent; one command job whose trainer appends ``--events``
(50,000) metric events to its events file as fast as it can (one open file, plain JSON
lines) and exits. The agent follows the file, stores every point in its outbox and
uploads them in batches; with ``--max-jobs 1`` it exits once the backend has the last
point and the terminal status. Measured:

- ingest rate: events / (agent exit - trainer start): the whole path, events file →
  outbox → backend, until the last report is acknowledged;
- the agent's CPU: its own user + system seconds (``os.wait4`` rusage of the agent
  minus the trainer's own, which the trainer reports), per 1,000 events;
- the points the backend stored (must equal the events written).

    .venv/bin/python benchmarks/agent_ingest.py [--events 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
from agent_support import agent_env, backend, machine, start_agent, user_and_key

TRAINER = textwrap.dedent(
    """
    import json, os, resource, sys, time
    count, report = int(sys.argv[1]), sys.argv[2]
    started = time.time()
    with open(os.environ["TRAINING_AGENT_EVENTS_FILE"], "a", encoding="utf-8") as events:
        events.write(json.dumps({"type": "progress", "total_steps": count}) + "\\n")
        for step in range(1, count + 1):
            events.write(json.dumps({
                "type": "metric", "step": step, "epoch": step / count,
                "train_loss": 1.0 / step, "learning_rate": 1e-4, "grad_norm": 0.5,
            }) + "\\n")
            if step % 1000 == 0:
                events.flush()
    written = time.time()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open(report, "w") as out:
        json.dump({"started": started, "written": written,
                   "cpu_s": usage.ru_utime + usage.ru_stime}, out)
    """
)


def measure(workdir: Path, events: int) -> dict[str, Any]:
    with backend(workdir) as server:
        key = user_and_key(server, "ingest")
        report = workdir / "trainer.json"
        job = {
            "model_name": "ingest",
            "config": {
                "type": "command",
                "command": [sys.executable, "-c", TRAINER, str(events), str(report)],
            },
        }
        (workdir / "job.json").write_text(json.dumps(job))
        job_id = server.cli(
            "jobs", "submit", "--user", "ingest", "--file", str(workdir / "job.json")
        ).strip()
        env = agent_env(
            workdir / "agent", url=server.url, key=key, TRAINING_AGENT_ALLOW_COMMAND_JOBS="1"
        )
        agent = start_agent(env, "--max-jobs", "1", log=workdir / "agent.log")
        _, status, usage = os.wait4(agent.pid, 0)
        agent.returncode = os.waitstatus_to_exitcode(status)
        ended = time.time()
        if agent.returncode != 0:
            raise RuntimeError(
                f"agent exited {agent.returncode}: {(workdir / 'agent.log').read_text()}"
            )
        trainer = json.loads(report.read_text())
        headers = {"Authorization": f"Bearer {key}"}
        stored = httpx.get(
            f"{server.url}/api/training/local/{job_id}/metrics", headers=headers, timeout=60
        ).json()["metrics"]
    agent_cpu = usage.ru_utime + usage.ru_stime - trainer["cpu_s"]
    wall = ended - trainer["started"]
    return {
        "events": events,
        "stored": len(stored),
        "wall_s": wall,
        "rate": events / wall,
        "writer_rate": events / (trainer["written"] - trainer["started"]),
        "agent_cpu_s": agent_cpu,
        "agent_cpu_ms_per_1000": 1000.0 * agent_cpu / events * 1000,
        "agent_cpu_percent": 100.0 * agent_cpu / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="agent-ingest-") as tmp:
        r = measure(Path(tmp), args.events)
    print(
        "| events | stored by the backend | trainer writes/s | end to end events/s "
        "| agent CPU | agent CPU per 1,000 events |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| {r['events']:,} | {r['stored']:,} | {r['writer_rate']:,.0f} | {r['rate']:,.0f} "
        f"| {r['agent_cpu_s']:.1f} s in {r['wall_s']:.1f} s ({r['agent_cpu_percent']:.0f} %) "
        f"| {r['agent_cpu_ms_per_1000']:.0f} ms |"
    )


if __name__ == "__main__":
    main()
