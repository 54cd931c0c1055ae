"""What the agent (and a local backend) cost per training step: CPU milliseconds.

A stand-in trainer does what ``transformers.Trainer`` with ``logging_steps=1`` does
under the agent: each step (``--step-ms`` of busy CPU) it checks for a pause request,
reports one metric point with ``training_agent.report`` and prints one log line. A real
backend and a real agent run it as a command job; psutil reads the CPU seconds of the
agent daemon and of the backend from the trainer's start to its end. CPU time, unlike
samples per second, hardly depends on what else runs on the machine, so the figure
holds on a shared machine where ``hf_overhead.py``'s throughput scatters.

    .venv/bin/python benchmarks/agent_step_cost.py [--steps 2000] [--step-ms 8]

The agent's share of a machine is then about agent ms / (step ms x cores the trainer
keeps busy).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
from agent_support import agent_env, backend, cpu_seconds, machine, start_agent, user_and_key

TRAINER = textwrap.dedent(
    """
    import sys, time
    from training_agent import report
    steps, step_s = int(sys.argv[1]), float(sys.argv[2])
    report.progress(total_steps=steps, total_epochs=1)
    for step in range(1, steps + 1):
        started = time.monotonic()
        while time.monotonic() - started < step_s:
            pass
        report.requested_action()
        loss = 1.0 / step
        report.metric(step, epoch=step / steps, train_loss=loss, learning_rate=1e-4,
                      grad_norm=0.5, train_perplexity=2.0, samples_per_second=1000.0)
        print({"loss": loss, "grad_norm": 0.5, "learning_rate": 1e-4, "epoch": step / steps})
    """
)


def measure(workdir: Path, steps: int, step_ms: float) -> tuple[float, float, float]:
    """CPU ms per step of the agent and the backend, and the trainer's wall time."""
    with backend(workdir) as server:
        key = user_and_key(server, "steps")
        command = [sys.executable, "-c", TRAINER, str(steps), str(step_ms / 1000)]
        job = {"model_name": "steps", "config": {"type": "command", "command": command}}
        (workdir / "job.json").write_text(json.dumps(job))
        server.cli("jobs", "submit", "--user", "steps", "--file", str(workdir / "job.json"))
        env = agent_env(
            workdir / "agent", url=server.url, key=key, TRAINING_AGENT_ALLOW_COMMAND_JOBS="1"
        )
        agent = start_agent(env, "--max-jobs", "1", log=workdir / "agent.log")
        daemon, serving = psutil.Process(agent.pid), psutil.Process(server.process.pid)
        while not daemon.children() and agent.poll() is None:
            time.sleep(0.005)
        first = (cpu_seconds(daemon), cpu_seconds(serving), time.monotonic())
        last = first
        while daemon.children() and agent.poll() is None:
            last = (cpu_seconds(daemon), cpu_seconds(serving), time.monotonic())
            time.sleep(0.05)
        if agent.wait(timeout=120) != 0:
            raise RuntimeError(f"agent failed: {(workdir / 'agent.log').read_text()}")
    per_step = [1000 * (last[i] - first[i]) / steps for i in (0, 1)]
    return per_step[0], per_step[1], last[2] - first[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--step-ms", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {machine()}; load average {psutil.getloadavg()[0]:.1f}")
    print("| round | trainer wall | agent CPU per step | backend CPU per step |")
    print("|---|---|---|---|")
    for round_no in range(1, args.rounds + 1):
        with tempfile.TemporaryDirectory(prefix="agent-steps-") as tmp:
            agent_ms, backend_ms, wall = measure(Path(tmp), args.steps, args.step_ms)
        print(f"| {round_no} | {wall:.1f} s | {agent_ms:.2f} ms | {backend_ms:.2f} ms |")


if __name__ == "__main__":
    main()
