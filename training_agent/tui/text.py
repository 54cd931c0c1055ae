"""Small text helpers the widgets share: durations, sizes, bars, short ids."""

from __future__ import annotations

from typing import Any

from training_agent.status.text import duration

__all__ = ["bar", "duration", "gb", "number", "short_id"]

BAR_FULL, BAR_EMPTY = "█", "░"


def short_id(job_id: str, width: int = 8) -> str:
    return job_id if len(job_id) <= width else job_id[: width - 1] + "…"


def bar(fraction: float | None, width: int) -> str:
    """``█████░░░░░`` for ``fraction`` (0-1); blanks when unknown."""
    if fraction is None:
        return BAR_EMPTY * width
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return BAR_FULL * filled + BAR_EMPTY * (width - filled)


def number(value: Any, fmt: str = ".4g") -> str:
    return format(value, fmt) if isinstance(value, int | float) else "-"


def gb(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, int | float) else "?"
