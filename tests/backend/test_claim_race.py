"""Twenty agents claim one job at once against the real server: exactly one wins.

Runs on SQLite and on PostgreSQL (``served_backend`` is parametrized over both).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from tests.support.backend import BackendProcess

CLAIMERS = 20


async def test_concurrent_claims_have_exactly_one_winner(
    served_backend: BackendProcess, tmp_path: Path
) -> None:
    backend = served_backend
    backend.cli("users", "create", "racer")
    key = backend.cli("keys", "create", "--user", "racer", "--scope", "training").strip()
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({"model_name": "m", "config": {"type": "command"}}))
    job_id = backend.cli("jobs", "submit", "--user", "racer", "--file", str(job_file)).strip()

    async with httpx.AsyncClient(base_url=backend.url, timeout=30.0) as client:

        async def claim(n: int) -> httpx.Response:
            headers = {"Authorization": f"Bearer {key}", "X-Agent-ID": f"agent_racer{n:04d}"}
            return await client.post(f"/api/training/agent/claim/{job_id}", headers=headers)

        answers = await asyncio.gather(*(claim(n) for n in range(CLAIMERS)))

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] + [409] * (CLAIMERS - 1), [a.text for a in answers]
    [winner] = [answer for answer in answers if answer.status_code == 200]
    losers = [answer.json() for answer in answers if answer.status_code == 409]
    assert all(loser["code"] == "ALREADY_CLAIMED" for loser in losers)
    shown = json.loads(backend.cli("jobs", "show", job_id, "--json"))["job"]
    assert shown["status"] == "running"
    assert shown["agent_id"] == f"agent_racer{answers.index(winner):04d}"
