"""A metric point's ``extra`` series (feature ``metrics_extra``): bounded, then sent only
to a backend that offers the feature.

A trainer may add ``"extra": {"rewards/margins": 0.4, ...}`` to a metric event (see
``training_agent.report``). The agent keeps at most ``MAX_SERIES`` of them per point,
each with a name of 1 to ``MAX_NAME`` characters and a finite number, in the order
written; it stores them in the outbox with the point, and the uploader sends them to a
backend that advertises ``metrics_extra``. A v1 backend (FineTune Lab) gets the fixed
keys only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

FEATURE = "metrics_extra"
MAX_SERIES = 64
MAX_NAME = 64


def clean(value: object) -> dict[str, float]:
    """The usable series of an event's ``extra`` (empty when it holds none)."""
    if not isinstance(value, Mapping):
        return {}
    series: dict[str, float] = {}
    for name, number in value.items():
        if len(series) == MAX_SERIES:
            break
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
            continue
        if isinstance(number, bool) or not isinstance(number, int | float):
            continue
        if math.isfinite(number):
            series[name] = float(number)
    return series


def for_backend(
    points: Iterable[Mapping[str, Any]], features: Iterable[str] | None
) -> list[dict[str, Any]]:
    """``points`` as the backend may receive them: without ``extra`` unless it offers it."""
    if FEATURE in (features or ()):
        return [dict(point) for point in points]
    return [{k: v for k, v in point.items() if k != "extra"} for point in points]
