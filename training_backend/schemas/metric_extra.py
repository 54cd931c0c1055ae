"""A metric point's ``extra`` (feature ``metrics_extra``): named series beyond the fixed
metric keys, such as ``rewards/margins`` or ``kl``.

At most ``MAX_SERIES`` names per point, each 1 to ``MAX_NAME`` characters, each mapped
to a number. A value that arrives as null (NaN and Infinity do, see
``body.read_json_object``) is dropped, like a fixed metric's: it erases nothing.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BeforeValidator

MAX_SERIES = 64
MAX_NAME = 64
INVALID = (
    f"Invalid metric: extra must map at most {MAX_SERIES} names of 1 to {MAX_NAME} "
    "characters to numbers"
)


def _series(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ValueError(INVALID)
    series: dict[str, float] = {}
    for name, number in value.items():
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
            raise ValueError(INVALID)
        if number is None:
            continue
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise ValueError(INVALID)
        if math.isfinite(number):
            series[name] = float(number)
    if len(value) > MAX_SERIES:
        raise ValueError(INVALID)
    return series


ExtraSeries = Annotated[dict[str, float], BeforeValidator(_series)]
