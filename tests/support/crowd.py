"""Simulated agents over real HTTP, shared by the backend benchmarks and the drain test."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

import httpx

POLL = "/api/training/agent/poll"


@dataclass
class DrainResult:
    """What a crowd of agents did to a queue: claims per job, and refused claims."""

    claims: Counter[str] = field(default_factory=Counter)
    lost_races: int = 0


async def drain_agent(
    http: httpx.AsyncClient, key: str, agent_id: str, result: DrainResult, wait_s: float = 0
) -> None:
    """Poll, claim, report completed, until a poll finds nothing."""
    headers = {"Authorization": f"Bearer {key}", "X-Agent-ID": agent_id}
    params = {"wait_seconds": wait_s} if wait_s else {}
    while True:
        polled = await http.get(POLL, headers=headers, params=params)
        polled.raise_for_status()
        job = polled.json()["job"]
        if job is None:
            return
        claim = await http.post(f"/api/training/agent/claim/{job['id']}", headers=headers)
        if claim.status_code == 409:
            result.lost_races += 1
            continue
        claim.raise_for_status()
        result.claims[job["id"]] += 1
        token = {"Authorization": f"Bearer {claim.json()['job_token']}"}
        done = await http.patch(
            f"/api/training/local/{job['id']}/status", json={"status": "completed"}, headers=token
        )
        done.raise_for_status()


async def drain(url: str, key: str, agents: int) -> DrainResult:
    """``agents`` agents draining the queue of ``key``'s user concurrently."""
    result = DrainResult()
    limits = httpx.Limits(max_connections=agents)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        await asyncio.gather(
            *(drain_agent(http, key, f"agent_drain{n:06d}", result) for n in range(agents))
        )
    return result
