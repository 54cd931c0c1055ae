"""Soak: hours of back-to-back jobs through the fault proxy; the agent must stay flat.

A real backend (SQLite), the fault proxy (``tests/support/fault_proxy.py``) in front of it
with the mixed fault script of ``tests/e2e/test_faults.py`` at a few percent of requests,
and a real ``training-agent start`` (its own home) pointed at the proxy. Jobs are
submitted one after the other through the backend's API: a command job whose script
prints two numbered log lines and reports one metric point (``training_agent.report``)
per step. Every tenth job fails on purpose half way, every tenth is cancelled a third of
the way. Every ``--sample-s`` the agent process (children excluded) is sampled: RSS,
open file descriptors, threads; its outbox (rows waiting, rows in its ``jobs`` table,
bytes of the database with its WAL) and its home's bytes; the backend's RSS; the load.

At the end every job is checked: each metric point and each log line stored exactly
once and in order, the expected terminal status, claimed once and delivered once (the
agent's log). Samples and jobs go to ``--results`` as JSON lines; a Markdown summary
(first vs last window medians, slope per hour, faults by class) goes to stdout.

    nice -n 10 .venv/bin/python benchmarks/soak.py --minutes 120 --results /tmp/soak/run.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import psutil
from agent_support import agent_env, backend, machine, start_agent, user_and_key
from soak_report import Job, summary

from tests.e2e.test_faults import MIXED, REPORTS
from tests.support.fault_proxy import start_fault_proxy

TRAINER = textwrap.dedent(
    """
    import sys, time
    from training_agent import report
    points, pause, fail_at = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    report.progress(total_steps=points, total_epochs=1)
    for step in range(1, points + 1):
        print(f"line {2 * step - 1}", flush=True)
        print(f"line {2 * step}", flush=True)
        report.metric(step, step / points, train_loss=1.0 / step)
        if step == fail_at:
            sys.exit(3)
        time.sleep(pause)
    """
)
PENDING_TABLES = ("logs", "held_logs", "metrics", "statuses", "artifacts")
LINE = re.compile(r"^line (\d+)$")
JOB_TIMEOUT_S = 600.0
EXPECTED = {"complete": "completed", "fail": "failed", "cancel": "cancelled"}


class Soak:
    def __init__(self, args: argparse.Namespace, workdir: Path, results: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.results = results
        self.home = workdir / "agent"
        self.jobs: list[Job] = []
        self.samples: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self._write_lock = threading.Lock()

    def record(self, entry: dict[str, Any]) -> None:
        with self._write_lock, self.results.open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry, default=str) + "\n")

    # -- sampling -----------------------------------------------------------------------

    def sample_forever(self, agent: psutil.Process, server: psutil.Process, t0: float) -> None:
        while not self.stop.wait(self.args.sample_s):
            try:
                self.take_sample(agent, server, t0)
            except (psutil.Error, OSError, sqlite3.Error) as exc:
                self.record({"type": "sample_error", "t": time.time() - t0, "error": str(exc)})

    def take_sample(self, agent: psutil.Process, server: psutil.Process, t0: float) -> None:
        outbox = self.home / "state" / "outbox.sqlite3"
        pending, job_rows = outbox_rows(outbox)
        work, logs = self.home / "data" / "jobs", self.home / "logs"
        sample = {
            "type": "sample",
            "t": round(time.time() - t0, 1),
            "agent_rss_mib": agent.memory_info().rss / 2**20,
            "agent_fds": agent.num_fds(),
            "agent_threads": agent.num_threads(),
            "agent_children": len(agent.children(recursive=True)),
            "outbox_pending": pending,
            "outbox_jobs": job_rows,
            "outbox_kib": sum(
                p.stat().st_size
                for p in (outbox, Path(f"{outbox}-wal"), Path(f"{outbox}-shm"))
                if p.exists()
            )
            / 1024,
            "home_kib": tree_bytes(self.home, skip=(work, logs)) / 1024,
            "work_dirs": len(list(work.iterdir())) if work.exists() else 0,
            "work_kib": tree_bytes(work) / 1024,
            "log_kib": tree_bytes(logs) / 1024,
            "backend_rss_mib": server.memory_info().rss / 2**20,
            "jobs": len(self.jobs),
            "load1": os.getloadavg()[0],
        }
        self.samples.append(sample)
        self.record(sample)

    # -- jobs ---------------------------------------------------------------------------

    def kind_of(self, index: int) -> str:
        return {4: "fail", 9: "cancel"}.get(index % 10, "complete")

    def run_job(self, owner: httpx.Client, index: int) -> Job:
        kind = self.kind_of(index)
        points = self.args.points
        fail_at = points // 2 if kind == "fail" else 0
        command = [sys.executable, "-c", TRAINER, str(points), str(self.args.step_s), str(fail_at)]
        answer = owner.post(
            "/api/training/jobs",
            json={"model_name": f"soak-{index}", "config": {"type": "command", "command": command}},
        )
        answer.raise_for_status()
        job = Job(str(answer.json()["job"]["id"]), kind, time.time())
        self.jobs.append(job)
        cancelled = False
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while time.monotonic() < deadline:
            found = get(owner, f"/api/training/local/{job.id}/status")
            if found["status"] in ("completed", "failed", "cancelled"):
                job.status = found["status"]
                break
            if kind == "cancel" and not cancelled and (found["current_step"] or 0) >= points // 3:
                owner.post(f"/api/training/local/{job.id}/control", json={"action": "cancel"})
                cancelled = True
            time.sleep(0.5)
        else:
            job.problems.append(f"not terminal within {JOB_TIMEOUT_S:.0f} s")
        job.ended = time.time()
        self.record({"type": "job", **asdict(job)})
        return job

    # -- the check ----------------------------------------------------------------------

    def check(self, owner: httpx.Client, agent_log: str) -> Counter[str]:
        """Check every job; adds its problems to it. The count of reports checked."""
        checked: Counter[str] = Counter()
        for job in self.jobs:
            metrics = get(owner, f"/api/training/local/{job.id}/metrics")["metrics"]
            steps = [int(point["step"]) for point in metrics]
            page = get(owner, f"/api/training/local/{job.id}/logs", limit=10_000)
            logs, total = page["logs"], page["total_lines"]
            numbered = [int(m.group(1)) for m in map(LINE.match, logs) if m]
            job.status = get(owner, f"/api/training/local/{job.id}/status")["status"]
            job.problems += self.problems(job, steps, numbered, len(logs), total, agent_log)
            checked["points"] += len(steps)
            checked["lines"] += len(logs)
            checked["other lines"] += len(logs) - len(numbered)
        return checked

    def problems(
        self, job: Job, steps: list[int], numbered: list[int], lines: int, total: int, log: str
    ) -> list[str]:
        points = self.args.points
        found = []
        if job.status != EXPECTED[job.kind] and not (
            job.kind == "cancel" and job.status == "completed"  # the cancel came too late
        ):
            found.append(f"status {job.status!r}, expected {EXPECTED[job.kind]!r}")
        if steps != list(range(1, len(steps) + 1)):
            found.append(f"metric steps not 1..n once each: {summarise(steps)}")
        if numbered != list(range(1, len(numbered) + 1)):
            found.append(f"log lines not 1..n once each: {summarise(numbered)}")
        if lines != total:
            found.append(f"{lines} log lines stored, the job counts {total}")
        want = {"complete": points, "fail": points // 2}.get(job.kind)
        if job.status == "completed":
            want = points
        if want is not None and (len(steps) != want or len(numbered) != 2 * want):
            found.append(
                f"{len(steps)} points and {len(numbered)} lines, expected {want}, {2 * want}"
            )
        for what, pattern in (
            ("claimed", rf"job {job.id} claimed"),
            ("delivered", rf"job {job.id}: all reports delivered"),
        ):
            count = len(re.findall(pattern, log))
            if count != 1:
                found.append(f"{what} {count} times in the agent's log")
        return found


def get(client: httpx.Client, path: str, **params: Any) -> dict[str, Any]:
    """GET ``path`` as the job's owner, waiting out the API key's rate limit (429)."""
    while True:
        answer = client.get(path, params=params)
        if answer.status_code != 429:
            answer.raise_for_status()
            found: dict[str, Any] = answer.json()
            return found
        time.sleep(float(answer.headers.get("retry-after", "1")))


def summarise(numbers: list[int]) -> str:
    duplicated = [n for n, c in Counter(numbers).items() if c > 1]
    missing = sorted(set(range(1, max(numbers, default=0) + 1)) - set(numbers))
    return f"{len(numbers)} in all, duplicated {duplicated[:5]}, missing {missing[:5]}"


def outbox_rows(path: Path) -> tuple[int, int]:
    """Rows waiting for delivery, and rows of the ``jobs`` table (one per job ever run)."""
    if not path.exists():
        return 0, 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        pending = sum(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in PENDING_TABLES)
        jobs = db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    finally:
        db.close()
    return int(pending), int(jobs)


def tree_bytes(root: Path, skip: tuple[Path, ...] = ()) -> int:
    total = 0
    for folder, folders, files in os.walk(root):
        folders[:] = [f for f in folders if Path(folder, f) not in skip]
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return total


# -- the run ----------------------------------------------------------------------------


def fault_script(rate: float) -> dict[str, Any]:
    """The mixed fault script of the e2e tests, at ``rate`` of reports and polls."""
    return {
        "seed": 1606,
        "rules": [
            # Claims are left alone, as in the e2e tests (lost claims: the crash tests).
            {"paths": "^/api/training/agent/claim/", "rate": 0.0, "faults": MIXED},
            {"paths": REPORTS, "rate": rate, "faults": MIXED},
            {"paths": "^/api/", "rate": rate, "faults": MIXED},
        ],
    }


def run(args: argparse.Namespace, workdir: Path, results: Path) -> int:
    soak = Soak(args, workdir, results)
    signal.signal(signal.SIGTERM, lambda *_: soak.stop.set())
    with (
        backend(workdir) as server,
        start_fault_proxy(workdir / "proxy", server.url, fault_script(args.fault_rate)) as proxy,
    ):
        agent_key = user_and_key(server, "soak")
        owner_key = server.cli("keys", "create", "--user", "soak", "--scope", "training").strip()
        env = agent_env(
            soak.home, url=proxy.url, key=agent_key, TRAINING_AGENT_ALLOW_COMMAND_JOBS="1"
        )
        agent_log = workdir / "agent.out"
        agent = start_agent(env, log=agent_log)
        owner = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {owner_key}"}, timeout=60
        )
        processes = (psutil.Process(agent.pid), psutil.Process(server.process.pid))
        try:
            t0 = time.time()
            soak.record({"type": "start", "machine": machine(), "args": vars(args)})
            drive(soak, owner, agent, processes, t0)
            time.sleep(5)  # the last job's outbox rows go out
            soak.take_sample(*processes, t0)
            checked = soak.check(owner, agent_log.read_text(errors="replace"))
            agent.send_signal(signal.SIGTERM)
            code = agent.wait(timeout=120)
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
        output = agent_log.read_text(errors="replace")
        lines = summary(
            soak.jobs, soak.samples, checked, proxy.injected(), (code, output), time.time() - t0
        )
    print("\n".join(lines))
    soak.record({"type": "summary", "lines": lines})
    return 1 if code != 0 or any(job.problems for job in soak.jobs) else 0


def drive(
    soak: Soak,
    owner: httpx.Client,
    agent: subprocess.Popen[bytes],
    processes: tuple[psutil.Process, psutil.Process],
    t0: float,
) -> None:
    """Jobs back to back until ``--minutes`` have passed (or SIGTERM, or Ctrl-C)."""
    deadline = time.monotonic() + soak.args.minutes * 60
    sampler = threading.Thread(target=soak.sample_forever, args=(*processes, t0), daemon=True)
    sampler.start()
    index = 0
    try:
        while time.monotonic() < deadline and not soak.stop.is_set():
            if agent.poll() is not None:
                print(f"the agent exited {agent.returncode}", file=sys.stderr)
                break
            try:
                job = soak.run_job(owner, index)
            except httpx.HTTPError as exc:  # the driver's own call to the backend
                soak.record({"type": "driver_error", "t": time.time() - t0, "error": repr(exc)})
                time.sleep(5)
                continue
            print(f"{time.time() - t0:7.0f} s job {index} {job.kind}: {job.status}", flush=True)
            index += 1
    except KeyboardInterrupt:
        pass
    soak.stop.set()
    sampler.join()


def recheck(results: Path, workdir: Path) -> int:
    """Check a run again from what it left (its results, the backend's database, the
    agent's and the proxy's logs), on a backend started again on that database."""
    entries = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    start = next(e for e in entries if e["type"] == "start")
    soak = Soak(argparse.Namespace(**start["args"]), workdir, results)
    fields = ("id", "kind", "submitted", "ended", "status", "problems")
    soak.jobs = [Job(**{k: e[k] for k in fields}) for e in entries if e["type"] == "job"]
    soak.samples = [e for e in entries if e["type"] == "sample"]
    served = workdir / "backend.log"
    if served.exists() and not (workdir / "backend-run.log").exists():
        served.rename(workdir / "backend-run.log")
    output = (workdir / "agent.out").read_text(errors="replace")
    with backend(workdir) as server:
        key = server.cli("keys", "create", "--user", "soak", "--scope", "training").strip()
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as owner:
            checked = soak.check(owner, output)
    injected_log = workdir / "proxy" / "injected.jsonl"
    injected = [json.loads(x) for x in injected_log.read_text().splitlines() if x.strip()]
    elapsed = soak.samples[-1]["t"] if soak.samples else 0.0
    lines = summary(soak.jobs, soak.samples, checked, injected, (None, output), elapsed)
    print("\n".join(lines))
    soak.record({"type": "summary", "lines": lines, "rechecked": True})
    return 1 if any(job.problems for job in soak.jobs) else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=120)
    parser.add_argument("--points", type=int, default=300, help="metric points per job")
    parser.add_argument("--step-s", type=float, default=0.1, help="pause between steps")
    parser.add_argument("--sample-s", type=float, default=30.0)
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--results", type=Path, default=None, help="JSON lines (default: in --dir)")
    parser.add_argument("--dir", type=Path, default=None, help="where everything goes (kept)")
    parser.add_argument(
        "--recheck", action="store_true", help="check the run in --dir again (--results)"
    )
    args = parser.parse_args()
    if args.recheck:
        sys.exit(recheck(args.results or args.dir / "results.jsonl", args.dir))
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = args.results or workdir / "results.jsonl"
    results.parent.mkdir(parents=True, exist_ok=True)
    print(f"everything in {workdir}; samples and jobs in {results}", flush=True)
    sys.exit(run(args, workdir, results))


if __name__ == "__main__":
    main()
