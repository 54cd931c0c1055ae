"""Hundreds of concurrent requests against the real server: every one answered, none lost.

Guards against the worker-thread / connection-pool deadlock: a request must never hold a
pooled connection while it waits for a free thread (see ``training_backend.deps.get_db``).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import httpx

from tests.support.backend import BackendProcess

AGENTS = 300
REPORTS = 60
LINES_PER_REPORT = 10


async def test_concurrent_polls_logs_and_metrics_all_succeed(
    backend: BackendProcess, tmp_path: Path
) -> None:
    backend.cli("users", "create", "busy")
    key = backend.cli("keys", "create", "--user", "busy").strip()
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({"config": {}}))
    job_id = backend.cli("jobs", "submit", "--user", "busy", "--file", str(job_file)).strip()
    api = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=AGENTS + 2 * REPORTS)

    async with httpx.AsyncClient(base_url=backend.url, timeout=30.0, limits=limits) as client:
        claim = await client.post(
            f"/api/training/agent/claim/{job_id}", headers=api | {"X-Agent-ID": "agent_worker0001"}
        )
        token = {"Authorization": f"Bearer {claim.json()['job_token']}"}
        polls = [
            client.get("/api/training/agent/poll", headers=api | {"X-Agent-ID": f"agent_{n:08d}"})
            for n in range(AGENTS)
        ]
        logs = [
            client.post(
                f"/api/training/local/{job_id}/logs",
                json={"logs": [f"{n}:{i}" for i in range(LINES_PER_REPORT)]},
                headers=token,
            )
            for n in range(REPORTS)
        ]
        metrics = [
            client.put(
                f"/api/training/local/{job_id}/metrics",
                json={"step": n + 1, "epoch": 0.0, "train_loss": float(n)},
                headers=token,
            )
            for n in range(REPORTS)
        ]
        answers = await asyncio.gather(*polls, *logs, *metrics)
        page = await client.get(
            f"/api/training/local/{job_id}/logs", params={"limit": 10_000}, headers=api
        )
        status = await client.get(f"/api/training/local/{job_id}/status", headers=api)

    assert Counter(answer.status_code for answer in answers) == {200: AGENTS + 2 * REPORTS}
    lines = page.json()["logs"]
    assert len(lines) == len(set(lines)) == REPORTS * LINES_PER_REPORT
    assert status.json()["current_step"] == REPORTS
    # Every poller, and the agent that claimed the job (a claim checks its agent in too).
    assert len(json.loads(backend.cli("agents", "list", "--json"))) == AGENTS + 1
