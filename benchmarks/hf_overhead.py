"""The agent's overhead on real training: samples per second through the agent vs direct.

Runs the built-in Hugging Face trainer on the same tiny random-weights causal LM and the
same chat dataset twice per round: once directly (``python -m training_agent.trainers.hf``
with an events file, no agent), once as a job that the real agent claims from the real
backend (both processes on loopback). The figure is the median ``samples_per_second`` the
trainer reported over its steps (the first steps, warm-up, left out). Rounds alternate
so drift on a shared machine hits both sides alike. It also prints the CPU time the
agent daemon and the backend spent per training step while the trainer ran: the figure
a shared machine's load does not blur.

    .venv/bin/python benchmarks/hf_overhead.py [--rounds 3] [--rows 512] [--hidden 64]

Needs the train extra. Results go to stdout as Markdown rows; docs/benchmarks.md keeps them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent_support import cpu_seconds  # noqa: E402

from tests.support.agent import agent_env, start_agent, wait_agent  # noqa: E402
from tests.support.backend import start_backend  # noqa: E402
from tests.support.e2e import make_user_and_key, submit  # noqa: E402
from tests.trainers.conftest import chat_rows, training_config  # noqa: E402
from training_agent.trainers import tiny  # noqa: E402

WARMUP_STEPS = 3


def steady(values: list[float]) -> float:
    return statistics.median(values[WARMUP_STEPS:] or values)


def direct(config: dict[str, Any], job_dir: Path) -> float:
    job_dir.mkdir(parents=True)
    (job_dir / "config.json").write_text(json.dumps(config))
    events = job_dir / "events.jsonl"
    env = {**os.environ, "TRAINING_AGENT_JOB_DIR": str(job_dir)}
    env["TRAINING_AGENT_EVENTS_FILE"] = str(events)
    subprocess.run(
        [sys.executable, "-m", "training_agent.trainers.hf", "--config", "config.json"],
        cwd=job_dir,
        env=env,
        check=True,
        capture_output=True,
    )
    points = [json.loads(line) for line in events.read_text().splitlines()]
    return steady([p["samples_per_second"] for p in points if "samples_per_second" in p])


def through_agent(config: dict[str, Any], work: Path) -> tuple[float, float, float]:
    """Samples/s through the agent, and the CPU seconds the agent and the backend used
    per training step while the trainer ran (the agent's start-up left out)."""
    with start_backend(work / "backend") as backend:
        key = make_user_and_key(backend, "bench")
        job_id = submit(backend, work, "bench", config)
        env = agent_env(work / "agent", backend_url=backend.url, api_key=key)
        agent = start_agent(env, "--max-jobs", "1")
        agent_cpu, backend_cpu = _cpu_while_training(agent, psutil.Process(backend.process.pid))
        code, output = wait_agent(agent, timeout_s=600)
        if code != 0:
            raise SystemExit(f"the agent failed: {output[-2000:]}")
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=backend.url, headers=headers) as http:
            metrics = http.get(f"/api/training/local/{job_id}/metrics").json()["metrics"]
    speed = steady([m["samples_per_second"] for m in metrics if m.get("samples_per_second")])
    return speed, agent_cpu / len(metrics), backend_cpu / len(metrics)


def _cpu_while_training(agent: Any, backend: psutil.Process) -> tuple[float, float]:
    """CPU seconds of the agent and the backend from the trainer's start to its end."""
    daemon = psutil.Process(agent.pid)
    while not daemon.children() and agent.poll() is None:
        time.sleep(0.01)
    start = (cpu_seconds(daemon), cpu_seconds(backend))
    last = start
    while daemon.children() and agent.poll() is None:
        last = (cpu_seconds(daemon), cpu_seconds(backend))
        time.sleep(0.05)
    return last[0] - start[0], last[1] - start[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=64, help="the tiny model's hidden size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = tiny.build(work / "model", hidden_size=args.hidden)
        data = work / "chat.jsonl"
        data.write_text("\n".join(json.dumps(r) for r in chat_rows(args.rows)))
        config = training_config(model, data, batch_size=8, max_length=64)
        alone, agent, agent_ms, backend_ms = [], [], [], []
        for round_no in range(args.rounds):
            alone.append(direct(config, work / f"direct{round_no}"))
            speed, agent_cpu, backend_cpu = through_agent(config, work / f"agent{round_no}")
            agent.append(speed)
            agent_ms.append(1000 * agent_cpu)
            backend_ms.append(1000 * backend_cpu)
        a, b = statistics.median(alone), statistics.median(agent)
        print("| run | samples/s (median of rounds) | rounds |")
        print("|---|---|---|")
        print(f"| direct | {a:.1f} | {', '.join(f'{x:.1f}' for x in alone)} |")
        print(f"| through the agent | {b:.1f} | {', '.join(f'{x:.1f}' for x in agent)} |")
        overhead = 100 * (a - b) / a
        print(f"\noverhead: {overhead:+.1f}% ({args.rows} rows, hidden {args.hidden}, batch 8)")
        print(
            f"CPU per training step: agent {statistics.median(agent_ms):.2f} ms, "
            f"backend {statistics.median(backend_ms):.2f} ms (median of rounds)"
        )


if __name__ == "__main__":
    main()
