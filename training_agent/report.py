"""Report a training script's progress to the training agent that runs it.

Import this in your own training script; it needs only the standard library::

    from training_agent import report

    report.progress(total_steps=len(loader) * epochs, total_epochs=epochs)
    for step, batch in enumerate(batches, start=1):
        loss = train_step(batch)
        report.metric(step, epoch=step / len(loader), train_loss=loss, learning_rate=lr)
    report.checkpoint(step, "checkpoints/last.pt")
    report.output("final_model", kind="model")   # a directory goes up as one tar archive

Each call appends one JSON line to the file named by ``$TRAINING_AGENT_EVENTS_FILE``,
which the agent follows and sends to the platform. Outside the agent that variable is
unset and every call does nothing, so the same script runs anywhere.

A script that can pause (the platform's Pause button) declares it, and then checks for
requests at safe points (between steps); the agent also sends SIGUSR1 on POSIX when it
writes a request, so a handler can note it without reading the file every step::

    report.capabilities(pause=True)
    for step in ...:
        if report.requested_action() == "pause":
            report.paused()
            while report.requested_action() != "resume":
                time.sleep(1)          # also leave this loop when SIGTERM asks to stop
            report.resumed()

Metric names the platform charts: ``train_loss``, ``eval_loss``, ``learning_rate``,
``grad_norm``, ``perplexity`` (or ``eval_perplexity``), ``train_perplexity``,
``samples_per_second``, ``tokens_per_second``, ``gpu_memory_allocated_gb``,
``gpu_memory_reserved_gb``, ``gpu_utilization_percent``. Values may be anything
``float()`` accepts (a tensor with one element, a NumPy scalar).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

__all__ = [
    "capabilities",
    "checkpoint",
    "metric",
    "output",
    "paused",
    "progress",
    "requested_action",
    "resumed",
]

EVENTS_FILE_ENV = "TRAINING_AGENT_EVENTS_FILE"
CONTROL_FILE_ENV = "TRAINING_AGENT_CONTROL_FILE"


def metric(step: int, epoch: float, **values: float | Mapping[str, float]) -> None:
    """Report the metrics of step ``step`` (counted from 1) at ``epoch`` (may be fractional).

    ``extra={"rewards/margins": 0.4, ...}`` carries series beyond the platform's names;
    the agent sends them to a backend that offers ``metrics_extra`` and drops them
    otherwise (values that are not finite are left out). Raises ``ValueError`` when
    ``step`` is below 1: the platform numbers steps from 1.
    """
    step_no = _step(step)
    extra = values.pop("extra", None)
    point: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, Mapping):
            raise TypeError(f"metric {name} must be a number; only extra takes a mapping")
        point[name] = float(value)
    if isinstance(extra, Mapping):
        series = {str(k): float(v) for k, v in extra.items() if math.isfinite(float(v))}
        if series:
            point["extra"] = series
    _append({"type": "metric", "step": step_no, "epoch": float(epoch), **point})


def progress(total_steps: int | None = None, total_epochs: float | None = None) -> None:
    """Report how long the run is: its total steps and/or epochs, once they are known."""
    event: dict[str, Any] = {"type": "progress"}
    if total_steps is not None:
        event["total_steps"] = int(total_steps)
    if total_epochs is not None:
        event["total_epochs"] = float(total_epochs)
    _append(event)


def checkpoint(step: int, path: str | os.PathLike[str]) -> None:
    """Report a checkpoint saved at ``step``; a relative ``path`` is taken from the cwd."""
    _append({"type": "checkpoint", "step": _step(step), "path": os.path.abspath(path)})


OUTPUT_KINDS = ("adapter", "model", "checkpoint", "file")


def output(path: str | os.PathLike[str], kind: str = "file", name: str | None = None) -> None:
    """Report a result file or directory: ``kind`` is ``"adapter"`` (LoRA), ``"model"``,
    ``"checkpoint"`` or ``"file"``; ``name`` is what the platform calls it (default: the
    file's name, a directory's name plus ``.tar``).

    On a platform that takes artifacts, the agent uploads it when the job ends (which
    kinds: the job's ``outputs.upload`` setting); it must lie inside the job's work dir.
    Raises ``ValueError`` for an unknown ``kind``.
    """
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"kind must be one of {', '.join(OUTPUT_KINDS)}, got {kind!r}")
    event: dict[str, Any] = {"type": "output", "path": os.path.abspath(path), "kind": kind}
    if name is not None:
        event["name"] = str(name)
    _append(event)


def capabilities(*, pause: bool = False) -> None:
    """Tell the agent what this script can do; ``pause=True`` promises that it checks
    ``requested_action()`` and reports ``paused()`` / ``resumed()``."""
    _append({"type": "capabilities", "pause": bool(pause)})


def requested_action() -> str | None:
    """The agent's latest request, ``"pause"`` or ``"resume"``; None when there is none."""
    path = os.environ.get(CONTROL_FILE_ENV)
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as control:
            action = json.load(control).get("action")
    except (OSError, ValueError, AttributeError):
        return None
    return action if action in ("pause", "resume") else None


def paused() -> None:
    """Say the script has paused (the platform then shows the job paused)."""
    _append({"type": "paused"})


def resumed() -> None:
    """Say the script runs again after a pause."""
    _append({"type": "resumed"})


def _step(step: int) -> int:
    number = int(step)  # also takes a one-element tensor or a NumPy integer
    if number < 1:
        raise ValueError(f"step must be 1 or more, got {number}")
    return number


def _append(event: dict[str, Any]) -> None:
    path = os.environ.get(EVENTS_FILE_ENV)
    if not path:
        return
    line = (json.dumps(event, separators=(",", ":")) + "\n").encode("utf-8")
    # One O_APPEND write per event, file opened per call: lines from several processes
    # (data-parallel ranks, a forked child) never interleave, and nothing is buffered
    # that a crash or a fork could lose or write twice.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
