"""The dashboard under 50 metric updates a second: does it keep up and answer keys?

A real backend and a real agent run one command job whose trainer reports ``--rate``
(50) metric points and log lines a second for ``--seconds`` (30) and more. The
dashboard runs in this process, headless (Textual's pilot, 100x30), attached to the
agent's live status API. Measured while the job runs: redraws a second; the age of the
newest log line the dashboard holds (the trainer writes the time into each line;
sampled every 0.5 s); the time from a key press (``?``) to the help screen being up
(every 0.5 s); and this process's CPU (the dashboard alone: agent and trainer are
other processes).

    .venv/bin/python benchmarks/dashboard_rate.py [--rate 50] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
from agent_support import agent_env, backend, machine, start_agent, user_and_key
from textual import events

from training_agent.paths import AgentPaths
from training_agent.tui.app import DashboardApp, create_app
from training_agent.tui.screens.help import HelpScreen
from training_agent.tui.source import status_api_connector

TRAINER = textwrap.dedent(
    """
    import json, os, sys, time
    rate, seconds = float(sys.argv[1]), float(sys.argv[2])
    total = int(rate * seconds)
    start = time.time()
    with open(os.environ["TRAINING_AGENT_EVENTS_FILE"], "a", encoding="utf-8") as events:
        events.write(json.dumps({"type": "progress", "total_steps": total}) + "\\n")
        for step in range(1, total + 1):
            time.sleep(max(0.0, start + step / rate - time.time()))
            events.write(json.dumps({"type": "metric", "step": step, "epoch": step / total,
                                     "train_loss": 1.0 / step}) + "\\n")
            events.flush()
            print(f"step {step} loss {1.0 / step:.5f} at {time.time():.3f}", flush=True)
    """
)


def press(app: DashboardApp, key: str, character: str | None) -> None:
    event = events.Key(key, character)
    event.set_sender(app)
    assert app._driver is not None
    app._driver.send_message(event)


async def watch(app: DashboardApp, job_id: str, seconds: float) -> dict[str, Any]:
    async with app.run_test(size=(100, 30)):
        # Until the job shows and the "no agent" screen (the agent was starting) is gone.
        while (app.model.job(job_id) or {}).get("step") is None or len(app.screen_stack) > 1:
            await asyncio.sleep(0.05)
        me = psutil.Process()
        cpu0, redraws0, t0 = sum(me.cpu_times()[:2]), app.redraws, time.monotonic()
        lags: list[float] = []
        keys: list[float] = []
        while time.monotonic() - t0 < seconds:
            log = app.model.logs.get(job_id)
            if log and log.lines and " at " in log.lines[-1]:  # the newest line's send time
                lags.append(time.time() - float(log.lines[-1].rsplit(" at ", 1)[1]))
            # A key as the terminal driver sends it (pilot.press would also wait for idle).
            if app.return_code is not None:
                raise RuntimeError(f"the dashboard exited: {app._exception!r}")
            pressed = time.monotonic()
            press(app, "question_mark", "?")
            while not isinstance(app.screen, HelpScreen):
                if time.monotonic() - pressed > 10:
                    raise RuntimeError("the help screen did not open within 10 s")
                await asyncio.sleep(0.001)
            keys.append(time.monotonic() - pressed)
            press(app, "escape", None)
            while isinstance(app.screen, HelpScreen):  # closed before the next press
                await asyncio.sleep(0.001)
            await asyncio.sleep(0.5)
        wall = time.monotonic() - t0
        cpu = sum(me.cpu_times()[:2]) - cpu0
        return {
            "wall_s": wall,
            "redraws_per_s": (app.redraws - redraws0) / wall,
            "lag_median_ms": 1000 * statistics.median(lags),
            "lag_max_ms": 1000 * max(lags),
            "key_median_ms": 1000 * statistics.median(keys),
            "key_max_ms": 1000 * max(keys),
            "cpu_percent": 100 * cpu / wall,
            "points": len(app.model.series(job_id, "train_loss")),
        }


def measure(workdir: Path, rate: float, seconds: float) -> dict[str, Any]:
    with backend(workdir) as server:
        key = user_and_key(server, "dash")
        command = [sys.executable, "-c", TRAINER, str(rate), str(seconds + 10)]
        job = {"model_name": "rate", "config": {"type": "command", "command": command}}
        (workdir / "job.json").write_text(json.dumps(job))
        job_id = server.cli(
            "jobs", "submit", "--user", "dash", "--file", str(workdir / "job.json")
        ).strip()
        home = workdir / "agent"
        env = agent_env(home, url=server.url, key=key, TRAINING_AGENT_ALLOW_COMMAND_JOBS="1")
        agent = start_agent(env, "--max-jobs", "1", log=workdir / "agent.log")
        try:
            app = create_app(status_api_connector(AgentPaths.under(home).status_file))
            return asyncio.run(watch(app, job_id, seconds))
        finally:
            agent.kill()
            agent.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="dashboard-rate-") as tmp:
        r = measure(Path(tmp), args.rate, args.seconds)
    print(
        "| updates/s | redraws/s | newest point's age median / max | key to screen "
        "median / max | dashboard CPU |"
    )
    print("|---|---|---|---|---|")
    print(
        f"| {args.rate:.0f} | {r['redraws_per_s']:.1f} | {r['lag_median_ms']:.0f} / "
        f"{r['lag_max_ms']:.0f} ms | {r['key_median_ms']:.0f} / {r['key_max_ms']:.0f} ms "
        f"| {r['cpu_percent']:.0f} % |"
    )


if __name__ == "__main__":
    main()
