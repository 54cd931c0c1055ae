"""Artifact upload throughput over loopback, and what it costs the agent in CPU.

A real backend (artifacts in a local directory) and a real agent; one command job
writes a ``--mib`` (512) MiB file of random bytes, declares it as its model and exits.
The agent hashes the file (SHA-256, one read), declares the upload and sends it in
8 MiB chunks; the backend writes each chunk to disk and verifies the SHA-256 when the
last one arrives. The benchmark reads the agent's status API every 0.1 s to see the
phases (``hashing`` → ``uploading`` → ``complete``) and samples the CPU time of the agent
and the backend processes at each phase change. Measured, per phase:

- hash: MB/s of the SHA-256 pass, and the agent's CPU in % of one core;
- upload: MB/s from the first chunk to the verified end (``size / seconds``), the
  agent's CPU and the backend's CPU in % of one core.

``--sink`` measures the agent's side alone: its artifact uploader, in this process,
sends the file to a loopback server that reads each chunk and throws it away (no
database, no disk, no hashing), so the numbers are the agent's own cost and speed.
Both modes also give the agent's CPU seconds per GB sent, which depends much less on
how busy the machine is than MB/s does.

Goal (issue 19): upload >= 200 MB/s with the agent <= 30 % of one core; the last
column says whether a run met it. ``--runs N`` repeats the whole measurement (a new
backend, agent and file each time) and prints one row per run.

    .venv/bin/python benchmarks/artifacts_upload.py [--mib 512] [--runs 3] [--sink]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from agent_support import (
    agent_env,
    agent_status,
    backend,
    cpu_seconds,
    machine,
    start_agent,
    user_and_key,
)

MB = 1_000_000
MIB = 1024 * 1024

TRAINER = textwrap.dedent(
    """
    import os, sys
    from training_agent import report
    size = int(sys.argv[1]) * 1024 * 1024
    block = os.urandom(1 << 20)
    with open("model.bin", "wb") as out:
        for start in range(0, size, 1 << 20):
            out.write(block[: min(1 << 20, size - start)])
            block = block[1:] + block[:1]  # not one repeated MiB: no store can dedupe it
    report.output("model.bin", kind="model")
    """
)


def phases(home: Path, agent: psutil.Process, server: psutil.Process) -> dict[str, Any]:
    """Watch the upload; (wall time, agent CPU, backend CPU) when each phase began."""
    seen: dict[str, tuple[float, float, float]] = {}
    deadline = time.monotonic() + 1800
    while "complete" not in seen and time.monotonic() < deadline:
        snapshot = agent_status(home) or {}
        for upload in snapshot.get("uploads") or []:
            state = upload["state"]
            if state == "failed":
                raise RuntimeError(f"the upload failed: {upload['error']}")
            if state not in seen:
                seen[state] = (time.monotonic(), cpu_seconds(agent), cpu_seconds(server))
        time.sleep(0.1)
    if "complete" not in seen:
        raise RuntimeError("the upload did not complete within 30 minutes")
    return seen


def measure(workdir: Path, mib: int) -> dict[str, Any]:
    size = mib * 1024 * 1024
    with backend(workdir) as server:
        key = user_and_key(server, "bench")
        job = {
            "model_name": "upload",
            "config": {"type": "command", "command": [sys.executable, "-c", TRAINER, str(mib)]},
        }
        (workdir / "job.json").write_text(json.dumps(job))
        job_id = server.cli(
            "jobs", "submit", "--user", "bench", "--file", str(workdir / "job.json")
        ).strip()
        home = workdir / "agent"
        env = agent_env(home, url=server.url, key=key, TRAINING_AGENT_ALLOW_COMMAND_JOBS="1")
        # No --max-jobs: an agent that stops itself once the upload is delivered can be
        # gone before the 0.1 s poll sees "complete"; this one is stopped afterwards.
        agent = start_agent(env, log=workdir / "agent.log")
        try:
            seen = phases(home, psutil.Process(agent.pid), psutil.Process(server.process.pid))
        finally:
            agent.terminate()
            agent.wait(timeout=120)
        headers = {"Authorization": f"Bearer {key}"}
        listed = httpx.get(
            f"{server.url}/api/training/jobs/{job_id}/artifacts", headers=headers, timeout=60
        ).json()["artifacts"]
    local = hashlib.sha256()
    with (home / "data" / "jobs" / job_id / "model.bin").open("rb") as model:
        while piece := model.read(1 << 20):
            local.update(piece)
    [artifact] = listed
    verified = bool(artifact["complete"]) and artifact["sha256"] == local.hexdigest()
    return _phases(size, seen, verified=verified)


# The discard server of ``--sink``: HTTP/1.1 keep-alive, a declaration answers offset 0,
# a chunk answers its end; the body is read in 1 MiB pieces and dropped.
SINK = textwrap.dedent(
    """
    import asyncio, json, re
    size = {}
    async def handle(reader, writer):
        try:
            while True:
                head = (await reader.readuntil(b"\\r\\n\\r\\n")).decode("latin-1")
                line, *headers = head.split("\\r\\n")
                length = next((int(h.split(":")[1]) for h in headers
                               if h.lower().startswith("content-length:")), 0)
                if line.startswith("POST"):
                    size["a"] = json.loads(await reader.readexactly(length))["size_bytes"]
                    answer = {"artifact_id": "a", "offset": 0, "max_chunk_bytes": 8 << 20}
                else:
                    left = length
                    while left:
                        left -= len(await reader.read(min(left, 1 << 20)))
                    end = int(re.search(r"offset=(\\d+)", line)[1]) + length
                    answer = {"offset": end, "complete": end >= size["a"]}
                body = json.dumps(answer).encode()
                writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\n"
                             b"Content-Length: %d\\r\\n\\r\\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()
    asyncio.run(main())
    """
)


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _upload_to_sink(workdir: Path, mib: int, port: int) -> dict[str, Any]:
    from training_agent.api import BackendClient
    from training_agent.executor.outputs import PlannedUpload
    from training_agent.identity import AgentIdentity
    from training_agent.jobs import OutputKind
    from training_agent.reporting.artifacts import ArtifactUploader
    from training_agent.reporting.outbox import Outbox
    from training_agent.status.uploads import UploadBoard

    marks: dict[str, tuple[float, float]] = {}

    class Marks(UploadBoard):
        def sent(self, seq: int, *, offset: int, size: int) -> None:
            marks.setdefault("uploading", (time.monotonic(), _own_cpu_s()))
            super().sent(seq, offset=offset, size=size)

        def settled(self, seq: int, *, error: str | None = None) -> None:
            marks["complete"] = (time.monotonic(), _own_cpu_s())
            super().settled(seq, error=error)

    model = workdir / "model.bin"
    with model.open("wb") as out:
        for _ in range(mib):
            out.write(os.urandom(MIB))
    outbox = Outbox(workdir / "outbox.sqlite3")
    outbox.open_job("job", "token")
    outbox.artifacts.add("job", [PlannedUpload(0, model, "model.bin", OutputKind.MODEL, False)])
    identity = AgentIdentity(
        agent_id="agent_0123456789abcdef", hostname="bench", platform="linux", version="0"
    )
    client = BackendClient(
        base_url=f"http://127.0.0.1:{port}", api_key="wak_benchmark", identity=identity
    )
    uploader = ArtifactUploader(
        outbox=outbox,
        client=client,
        features=lambda: frozenset({"artifacts"}),
        board=Marks(),
        heartbeat_interval_s=None,
    )
    marks["hashing"] = (time.monotonic(), _own_cpu_s())
    try:
        await uploader.drain_once()
    finally:
        await client.aclose()
        outbox.close()
    [row] = outbox_rows(workdir)
    if row != "complete":
        raise RuntimeError(f"the upload ended {row}")
    return _phases(mib * MIB, {k: (t, c, 0.0) for k, (t, c) in marks.items()}, verified=None)


def outbox_rows(workdir: Path) -> list[str]:
    from training_agent.reporting.outbox import Outbox

    outbox = Outbox(workdir / "outbox.sqlite3")
    try:
        return [row.state.value for row in outbox.artifacts.of_job("job")]
    finally:
        outbox.close()


def measure_sink(workdir: Path, mib: int) -> dict[str, Any]:
    sink = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None
        port = int(sink.stdout.readline())
        return asyncio.run(_upload_to_sink(workdir, mib, port))
    finally:
        sink.kill()
        sink.wait()


def _phases(
    size: int, seen: dict[str, tuple[float, float, float]], *, verified: bool | None
) -> dict[str, Any]:
    hash_at, upload_at, done_at = seen.get("hashing"), seen["uploading"], seen["complete"]
    upload_s = done_at[0] - upload_at[0]
    result = {
        "size": size,
        "verified": verified,
        "upload_mbps": size / MB / upload_s,
        "upload_s": upload_s,
        "agent_upload_cpu": 100 * (done_at[1] - upload_at[1]) / upload_s,
        "agent_cpu_s_per_gb": (done_at[1] - upload_at[1]) / (size / 1e9),
        "backend_upload_cpu": 100 * (done_at[2] - upload_at[2]) / upload_s,
        "backend_cpu_s_per_gb": (done_at[2] - upload_at[2]) / (size / 1e9),
    }
    if hash_at is not None:
        hash_s = upload_at[0] - hash_at[0]
        result["hash_mbps"] = size / MB / hash_s
        result["agent_hash_cpu"] = 100 * (upload_at[1] - hash_at[1]) / hash_s
    return result


def _verified(verified: bool | None) -> str:
    return "n/a (discarded)" if verified is None else "yes" if verified else "NO"


def _http_stack() -> str:
    """What uvicorn runs the backend on here (it picks httptools and uvloop when present)."""

    def have(name: str) -> bool:
        return importlib.util.find_spec(name) is not None

    parser = "httptools" if have("httptools") else "h11 (pure Python)"
    return f"{parser}, {'uvloop' if have('uvloop') else 'asyncio'} event loop"


def _row(r: dict[str, Any], *, sink: bool, load: float) -> str:
    hashing = f"{r['hash_mbps']:.0f} MB/s" if "hash_mbps" in r else "-"
    hash_cpu = f"{r['agent_hash_cpu']:.0f} %" if "agent_hash_cpu" in r else "-"
    backend_cpu = "- | -"
    if not sink:
        backend_cpu = f"{r['backend_upload_cpu']:.0f} % | {r['backend_cpu_s_per_gb']:.2f}"
    met = r["upload_mbps"] >= 200 and r["agent_upload_cpu"] <= 30
    return (
        f"| {'discard server' if sink else 'backend'} | {r['size'] / MIB:.0f} MiB "
        f"| {_verified(r['verified'])} | {hashing} | {hash_cpu} "
        f"| {r['upload_mbps']:.0f} MB/s in {r['upload_s']:.1f} s "
        f"| {r['agent_upload_cpu']:.0f} % | {r['agent_cpu_s_per_gb']:.2f} | {backend_cpu} "
        f"| {load:.1f} | {'yes' if met else 'no'} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--runs", type=int, default=1, help="repeat the measurement")
    parser.add_argument("--sink", action="store_true", help="the agent's side alone")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    if not args.sink:
        print(f"backend HTTP: uvicorn on {_http_stack()}")
    print(
        "| to | size | verified | SHA-256 pass | agent CPU (hash) | upload "
        "| agent CPU (upload) | agent CPU s per GB | backend CPU (upload) | backend CPU s per GB "
        "| load average before | goal met (>= 200 MB/s, agent <= 30 %) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for _ in range(args.runs):
        load = psutil.getloadavg()[0]
        with tempfile.TemporaryDirectory(prefix="artifacts-upload-") as tmp:
            work = Path(tmp)
            r = measure_sink(work, args.mib) if args.sink else measure(work, args.mib)
        print(_row(r, sink=args.sink, load=load), flush=True)


if __name__ == "__main__":
    main()
