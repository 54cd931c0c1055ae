"""The backend's side of an artifact upload: throughput, CPU and memory while it takes in
chunks over loopback.

A real ``training-backend serve`` process (SQLite, artifacts in a local folder) receives
one artifact of ``--mib`` MiB (default 512) in 8 MiB chunks from a plain HTTP client in
this process (no agent: ``benchmarks/artifacts_upload.py`` measures the whole path with
one). psutil samples the backend's CPU time and resident memory; the peak's growth over
the idle process shows that it holds a chunk or two, never the file.

    .venv/bin/python benchmarks/artifact_ingest.py [--mib 512]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from agent_support import Backend, backend, cpu_seconds, machine, user_and_key

CHUNK = 8 * 1024 * 1024
AGENT_ID = "agent_benchmark0000001"


def claimed(server: Backend, workdir: Path, key: str) -> tuple[str, str]:
    job_file = workdir / "job.json"
    job_file.write_text(json.dumps({"config": {"type": "command", "command": ["true"]}}))
    job_id = server.cli("jobs", "submit", "--user", "bench", "--file", str(job_file)).strip()
    headers = {"Authorization": f"Bearer {key}", "X-Agent-ID": AGENT_ID}
    answer = httpx.post(f"{server.url}/api/training/agent/claim/{job_id}", headers=headers)
    answer.raise_for_status()
    return job_id, answer.json()["job_token"]


def chunks(total: int) -> tuple[list[bytes], str]:
    """A few distinct random chunks reused round-robin, and the whole file's SHA-256."""
    pool = [os.urandom(CHUNK) for _ in range(4)]
    sha256 = hashlib.sha256()
    for index in range(0, total, CHUNK):
        sha256.update(pool[(index // CHUNK) % 4][: total - index])
    return pool, sha256.hexdigest()


class Sampler(threading.Thread):
    """The process's peak resident memory, sampled every 50 ms."""

    def __init__(self, process: psutil.Process) -> None:
        super().__init__(daemon=True)
        self.process, self.peak, self.done = process, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.05)


def upload(url: str, job_id: str, token: str, total: int) -> dict[str, Any]:
    pool, sha256 = chunks(total)
    auth = {"Authorization": f"Bearer {token}"}
    body = {"name": "bench.bin", "kind": "file", "size_bytes": total, "sha256": sha256}
    with httpx.Client(base_url=url, headers=auth, timeout=120) as client:
        declared = client.post(f"/api/training/local/{job_id}/artifacts", json=body).json()
        path = f"/api/training/local/{job_id}/artifacts/{declared['artifact_id']}"
        started = time.perf_counter()
        for offset in range(0, total, CHUNK):
            data = pool[(offset // CHUNK) % 4][: total - offset]
            answer = client.put(path, params={"offset": offset}, content=data)
            answer.raise_for_status()
        elapsed = time.perf_counter() - started
    assert answer.json()["complete"], answer.text
    return {"seconds": elapsed, "complete": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=512, help="artifact size in MiB")
    args = parser.parse_args()
    total = args.mib * 1024 * 1024
    with tempfile.TemporaryDirectory() as folder, backend(Path(folder)) as server:
        key = user_and_key(server, "bench")
        job_id, token = claimed(server, Path(folder), key)
        process = psutil.Process(server.process.pid)
        idle_rss = process.memory_info().rss
        sampler = Sampler(process)
        sampler.start()
        cpu_before = cpu_seconds(process)
        result = upload(server.url, job_id, token, total)
        cpu = cpu_seconds(process) - cpu_before
        sampler.done.set()
        sampler.join()
    mb_per_s = total / 1e6 / result["seconds"]
    print(machine())
    print(f"{args.mib} MiB in 8 MiB chunks: {result['seconds']:.2f} s, {mb_per_s:.0f} MB/s")
    print(f"backend CPU: {cpu:.2f} s ({100 * cpu / result['seconds']:.0f} % of one core)")
    growth = (sampler.peak - idle_rss) / 1024**2
    print(f"backend memory: {idle_rss / 1024**2:.0f} MiB idle, peak +{growth:.0f} MiB")


if __name__ == "__main__":
    main()
