"""The status snapshot as text: what ``training-agent status`` prints, and the durations
the dashboard shows too.

    agent     agent_3f2a9c0d1e4b5a6f  training-agent 0.1.0  pid 4242  up 2h 03m
    backend   https://app.example.com
    link      connected (long poll)  last poll 3s ago, 12 ms
    claiming  yes
    running   1 job
      7c1e…  demo-model  running  step 120/600 (20%)  epoch 0.40/2  loss 0.6931  1m 02s, 4m 10s left
    uploads
      7c1e…  final_adapter.tar  adapter  uploading 24.0 MiB of 64.0 MiB (38%)  91.3 MB/s  0s left
    recent
      5b0d…  completed  3m 12s  ended 5m ago
"""

from __future__ import annotations

import re
from typing import Any

# Characters a terminal would act on rather than show: C0 and C1 controls (escape
# sequences among them) and the bidirectional overrides that can reorder a line.
_UNPRINTABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

_LINK = {
    "starting": "starting (no poll answered yet)",
    "connected": "connected",
    "unreachable": "backend unreachable",
    "rejected": "API key rejected",
    "refused": "requests refused by the backend",
    "revoked": "agent revoked on the platform",
    "outdated": "agent too old for the platform (install the new version)",
}


def printable(value: object) -> str:
    """``value`` as one line a terminal shows as it is: controls become escapes.

    Every text from a job or the backend (ids, model names, errors, reasons) goes
    through this before it reaches a terminal: it must not be able to move the cursor,
    retitle the window, hide part of a line or start a line of its own.

    >>> printable("job\\x1b[2Jname\\tx")
    'job\\\\x1b[2Jname x'
    """
    return _UNPRINTABLE.sub(_escape, str(value).replace("\t", " "))


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def render(snapshot: dict[str, Any]) -> str:
    """The snapshot as the lines ``training-agent status`` prints (every text printable)."""
    now = float(snapshot.get("now") or 0.0)
    lines = [
        f"agent     {printable(snapshot['agent_id'])}  training-agent "
        f"{printable(snapshot['version'])}"
        f"  pid {snapshot.get('pid', '?')}  up {duration(now - snapshot['started_at'])}",
        f"backend   {printable(snapshot['backend_url'])}",
        f"link      {_link(snapshot['connection'], now)}",
        f"claiming  {'no (draining: finishing running jobs)' if snapshot['draining'] else 'yes'}",
    ]
    lines += [f"problem   {sentence}" for sentence in (snapshot.get("problems") or {}).values()]
    jobs = snapshot.get("jobs") or []
    lines.append(f"running   {len(jobs)} job{'' if len(jobs) == 1 else 's'}")
    lines += [f"  {_running(job)}" for job in jobs]
    uploads = snapshot.get("uploads") or []
    if uploads:
        lines.append("uploads")
        lines += [f"  {upload_line(upload)}" for upload in uploads]
    recent = snapshot.get("recent_jobs") or []
    if recent:
        lines.append("recent")
        lines += [f"  {_finished(job, now)}" for job in recent[:5]]
    return "\n".join(lines)


def _link(connection: dict[str, Any], now: float) -> str:
    state = str(connection.get("state"))
    text = _LINK.get(state, printable(state))
    if state == "connected" and connection.get("long_poll"):
        held = connection.get("poll_started_at")
        text += f" (long poll, held {duration(now - held)})" if held else " (long poll)"
    if connection.get("reason") and state != "connected":
        text += f": {printable(connection['reason'])}"
    if connection.get("next_retry_at") and state != "connected":
        text += f"; next try in {duration(connection['next_retry_at'] - now)}"
    if connection.get("last_poll_at"):
        text += f"  last poll {duration(now - connection['last_poll_at'])} ago"
        if connection.get("last_poll_latency_s") is not None:
            text += f", {connection['last_poll_latency_s'] * 1000:.0f} ms"
    return text


def _running(job: dict[str, Any]) -> str:
    parts = [
        printable(job["id"]),
        printable(job.get("model_name") or "-"),
        printable(job["status"]),
    ]
    if job.get("step") is not None:
        step = f"step {job['step']}"
        if job.get("total_steps"):
            step += f"/{job['total_steps']}"
        if job.get("progress") is not None:
            step += f" ({job['progress'] * 100:.0f}%)"
        parts.append(step)
    if job.get("epoch") is not None:
        epoch = f"epoch {job['epoch']:.2f}"
        if job.get("total_epochs"):
            epoch += f"/{job['total_epochs']:g}"
        parts.append(epoch)
    loss = (job.get("last_metrics") or {}).get("train_loss")
    if isinstance(loss, int | float):
        parts.append(f"loss {loss:.4g}")
    timing = duration(job["elapsed_s"])
    if job.get("eta_s") is not None:
        timing += f", {duration(job['eta_s'])} left"
    parts.append(timing)
    return "  ".join(parts)


def _finished(job: dict[str, Any], now: float) -> str:
    parts = [printable(job["id"]), printable(job["status"]), duration(job["elapsed_s"])]
    if job.get("finished_at"):
        parts.append(f"ended {duration(now - job['finished_at'])} ago")
    if job.get("error"):
        error = str(job["error"]).splitlines()[0] if str(job["error"]).strip() else ""
        parts.append(f"({printable(error[:80])})")
    return "  ".join(parts)


def upload_line(upload: dict[str, Any]) -> str:
    """One artifact upload: its job, name, kind, and bytes, rate and time left."""
    parts = [str(upload.get("job_id")), str(upload.get("name")), str(upload.get("kind"))]
    state, size = upload.get("state"), upload.get("size_bytes")
    sent = int(upload.get("sent_bytes") or 0)
    if state == "hashing" and size:
        parts.append(f"checksumming {int(upload.get('hashed_bytes') or 0) / size:.0%}")
    elif state in ("uploading", "waiting") and size:
        text = f"{state} {byte_size(sent)} of {byte_size(size)} ({sent / size:.0%})"
        if state == "waiting":
            text += ", the backend did not take it yet"
        parts.append(text)
        if upload.get("rate_bps"):
            parts.append(f"{upload['rate_bps'] / 1e6:.1f} MB/s")
        if upload.get("eta_s") is not None:
            parts.append(f"{duration(upload['eta_s'])} left")
    elif state == "complete":
        parts.append(f"uploaded {byte_size(size or sent)}")
    elif state == "failed":
        parts.append(f"not uploaded: {str(upload.get('error') or '')[:100]}")
    else:
        parts.append(str(state))
    return "  ".join(parts)


def byte_size(count: float) -> str:
    """``512 B``, ``3.2 KiB``, ``64.0 MiB``, ``1.50 GiB``."""
    if count < 1024:
        return f"{int(count)} B"
    if count < 1024**2:
        return f"{count / 1024:.1f} KiB"
    if count < 1024**3:
        return f"{count / 1024**2:.1f} MiB"
    return f"{count / 1024**3:.2f} GiB"


def duration(seconds: float) -> str:
    """``42s``, ``3m 07s``, ``2h 03m``, ``4d 06h``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"
