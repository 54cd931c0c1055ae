"""The soak benchmark's jobs and its Markdown summary (``benchmarks/soak.py``)."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from agent_support import machine

# name, sample key, tolerance: "flat" means the last window's median is within 10 % or
# the tolerance of the first window's.
FLAT: list[tuple[str, str, float | None]] = [
    ("agent RSS (MiB)", "agent_rss_mib", 2.0),
    ("agent open fds", "agent_fds", 2),
    ("agent threads", "agent_threads", 2),
    ("outbox rows waiting", "outbox_pending", 600),
    ("outbox file + WAL (KiB)", "outbox_kib", 256),
    ("agent home w/o job folders, log (KiB)", "home_kib", 256),
    ("backend RSS (MiB)", "backend_rss_mib", 4.0),
]
GROWING: list[tuple[str, str, float | None]] = [  # known to grow with each job, by design
    ("outbox `jobs` rows (one per job)", "outbox_jobs", None),
    ("job work folders", "work_dirs", None),
    ("job work folders (KiB)", "work_kib", None),
    ("agent log (KiB)", "log_kib", None),
]


@dataclass
class Job:
    id: str
    kind: str
    submitted: float
    ended: float = 0.0
    status: str = ""
    problems: list[str] = field(default_factory=list)


def slope_per_hour(samples: list[dict[str, Any]], key: str) -> float:
    """Least-squares slope of ``key`` against time, per hour."""
    if len(samples) < 3:
        return 0.0
    ts = [s["t"] / 3600 for s in samples]
    ys = [float(s[key]) for s in samples]
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    var = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / var if var else 0.0


def table(samples: list[dict[str, Any]], window_s: float) -> list[str]:
    """Markdown rows: first vs last window medians, slope after the first window."""
    end = samples[-1]["t"]
    first = [s for s in samples if s["t"] <= window_s] or samples[:1]
    last = [s for s in samples if s["t"] >= end - window_s]
    steady = [s for s in samples if s["t"] > window_s] or samples
    minutes = f"{window_s / 60:.0f} min"
    rows = [
        f"| measure | median, first {minutes} | median, last {minutes} "
        "| slope after the first window, per hour | max | flat |",
        "|---|---|---|---|---|---|",
    ]
    for name, key, tolerance in FLAT + GROWING:
        a = statistics.median(s[key] for s in first)
        b = statistics.median(s[key] for s in last)
        top = max(s[key] for s in samples)
        flat = "-" if tolerance is None else ("yes" if b <= max(a * 1.1, a + tolerance) else "NO")
        rows.append(
            f"| {name} | {a:,.1f} | {b:,.1f} | {slope_per_hour(steady, key):+,.2f} "
            f"| {top:,.1f} | {flat} |"
        )
    return rows


def fault_classes(injected: list[dict[str, Any]]) -> str:
    kinds: Counter[str] = Counter()
    for fault in injected:
        name = str(fault["kind"])
        if fault.get("status") is not None:
            name = f"{fault['status']}" + (" + Retry-After" if fault.get("retry_after") else "")
        kinds[name] += 1
    return ", ".join(f"{name} {count}" for name, count in sorted(kinds.items()))


def summary(
    jobs: list[Job],
    samples: list[dict[str, Any]],
    checked: Counter[str],
    injected: list[dict[str, Any]],
    agent: tuple[int | None, str],
    elapsed: float,
) -> list[str]:
    """The run in Markdown: where, how long, what was met, what was checked, the table."""
    code, output = agent
    bad = [job for job in jobs if job.problems]
    kinds = Counter(f"{job.kind} -> {job.status}" for job in jobs)
    loads = [s["load1"] for s in samples] or [0.0]
    ran = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
    lines = [
        f"machine: {machine()}",
        f"ran {elapsed / 60:.1f} min, {len(jobs)} jobs ({ran}); load average (1 min) "
        f"median {statistics.median(loads):.1f}, max {max(loads):.1f}",
        f"faults injected: {len(injected)} ({fault_classes(injected)})",
        f"reports checked: {checked['points']:,} metric points, {checked['lines']:,} log lines "
        f"({checked['other lines']} not the trainer's own); jobs with a problem: {len(bad)}",
        f"agent exit code after SIGTERM: {'not seen' if code is None else code}; "
        f"tracebacks in its log: "
        f"{output.count('Traceback')}; reports dropped: "
        f"{output.count('rejected by the backend, dropped')}",
        "",
        *table(samples, min(600.0, elapsed / 3)),
    ]
    lines += [f"- job {j.id} ({j.kind}, {j.status}): {'; '.join(j.problems)}" for j in bad]
    return lines
