"""Small text helpers the widgets share: durations, sizes, bars, short ids, plain text.

Every text that comes from a job or the backend (ids, model names, errors, reasons,
log lines) reaches the screen through ``plain``: a ``Text`` that is never read as
markup (a job named ``[/]`` is shown as ``[/]``), with terminal controls escaped.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from training_agent.status.text import duration, printable

__all__ = ["bar", "duration", "gb", "number", "plain", "printable", "short_id"]

BAR_FULL, BAR_EMPTY = "█", "░"


def plain(value: object, style: str = "") -> Text:
    """``value`` shown as it is: no markup read, controls escaped (``printable``)."""
    return Text(printable(value), style)


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
