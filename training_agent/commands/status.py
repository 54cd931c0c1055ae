"""``training-agent status``, ``drain``, ``resume`` and ``cancel``: the status API from a shell.

``status`` prints the snapshot as a few lines (``status.text``; ``--json``: the snapshot
itself); the others ask the running agent to stop or start claiming, or to cancel a job.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from training_agent.status.client import StatusClient
from training_agent.status.text import render


def status_command(status_path: Path, *, as_json: bool) -> int:
    """``training-agent status [--json]``; raises ``AgentNotRunningError`` (exit code 3)."""
    snapshot = asyncio.run(_call(status_path, "status"))
    print(json.dumps(snapshot, indent=2) if as_json else render(snapshot))
    return 0


def control_command(status_path: Path, action: str, job_id: str | None = None) -> int:
    """``training-agent drain | resume | cancel JOB``."""
    asyncio.run(_call(status_path, action, job_id))
    print(_DONE[action].format(job_id=job_id))
    return 0


_DONE = {
    "drain": "draining: the agent finishes its running jobs and claims no new ones",
    "resume": "claiming new jobs again",
    "cancel": "job {job_id} is being cancelled",
}


async def _call(status_path: Path, action: str, job_id: str | None = None) -> Any:
    async with StatusClient.connect(status_path) as client:
        if action == "status":
            return await client.status()
        if action == "drain":
            return await client.drain()
        if action == "resume":
            return await client.resume()
        return await client.cancel(str(job_id))
