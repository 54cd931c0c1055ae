"""What an agent says about itself in its request headers, read and checked.

    X-Agent-ID            required: ``agent_`` + at least 4 more characters (400 otherwise)
    X-Agent-Hostname, X-Agent-Platform, X-Agent-Version   optional columns of its row
    X-Agent-Info          compact JSON object (cpu count, memory, GPUs, disk, max and
                          busy jobs...), at most 4 KiB
    X-Agent-Current-Jobs  comma-separated ids of the jobs the agent is running (empty: none)

An absent or unusable optional header reads as ``None``, which erases nothing stored.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from training_backend.errors import ApiError

AGENT_ID_PREFIX = "agent_"
AGENT_ID_MIN_CHARS = 10
AGENT_ID_MAX_CHARS = 128
PLATFORMS = ("linux", "darwin", "windows")
MAX_AGENT_INFO_BYTES = 4096
MAX_CURRENT_JOBS = 64
_MAX_HEADER_CHARS = {"hostname": 255, "version": 64}
_JOB_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@dataclass(frozen=True)
class AgentIdentity:
    """Who is polling: the checked agent id and what the optional headers said.

    ``None`` means the header was absent (or unusable), so the stored value stays.
    ``platform`` is the header lowercased; ``record_poll`` stores null for a platform
    outside ``PLATFORMS``.
    """

    agent_id: str
    hostname: str | None = None
    platform: str | None = None
    version: str | None = None
    info: dict[str, Any] | None = None
    current_jobs: tuple[str, ...] | None = None


def _optional_header(headers: Mapping[str, str], name: str, max_chars: int) -> str | None:
    value = headers.get(name, "").strip()
    return value[:max_chars] or None


def parse_agent_info(value: str | None) -> dict[str, Any] | None:
    """The ``X-Agent-Info`` object, or ``None`` if absent, too big or not a JSON object.

    >>> parse_agent_info('{"cpu_count": 8}')
    {'cpu_count': 8}
    >>> parse_agent_info('[1, 2]') is None
    True
    """
    if value is None or len(value.encode("utf-8", "replace")) > MAX_AGENT_INFO_BYTES:
        return None
    try:
        data = json.loads(value, parse_constant=_not_json, parse_float=_finite_float)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or _holds_nul(data):
        return None  # PostgreSQL cannot store a NUL character in a JSON document
    return data


def _not_json(constant: str) -> None:
    # NaN and Infinity: Python writes them, but they are not JSON and PostgreSQL refuses them.
    raise ValueError(f"{constant} is not JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e999
        raise ValueError(f"{text} is out of range")
    return number


def _holds_nul(document: Any) -> bool:
    pending = [document]
    while pending:  # a loop, not recursion: the document may be deeply nested
        value = pending.pop()
        if isinstance(value, str) and "\x00" in value:
            return True
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False


def parse_current_jobs(value: str | None) -> tuple[str, ...] | None:
    """The job ids of ``X-Agent-Current-Jobs``; ``None`` if absent or malformed.

    >>> parse_current_jobs("j1, j2")
    ('j1', 'j2')
    >>> parse_current_jobs("")
    ()
    """
    if value is None:
        return None
    ids = tuple(part.strip() for part in value.split(",") if part.strip())
    if len(ids) > MAX_CURRENT_JOBS or not all(_JOB_ID.fullmatch(job_id) for job_id in ids):
        return None
    return tuple(dict.fromkeys(ids))


def agent_identity_from_headers(headers: Mapping[str, str]) -> AgentIdentity:
    """Read and check ``X-Agent-ID`` (400 if absent or malformed) and the optional headers."""
    agent_id = headers.get("x-agent-id", "").strip()
    if not agent_id:
        raise ApiError(400, "MISSING_AGENT_ID", "Missing X-Agent-ID header")
    valid_length = AGENT_ID_MIN_CHARS <= len(agent_id) <= AGENT_ID_MAX_CHARS
    if not agent_id.startswith(AGENT_ID_PREFIX) or not valid_length:
        message = "Invalid X-Agent-ID format. Expected: agent_xxxxx"
        raise ApiError(400, "INVALID_AGENT_ID", message)
    platform = _optional_header(headers, "x-agent-platform", 16)
    return AgentIdentity(
        agent_id=agent_id,
        hostname=_optional_header(headers, "x-agent-hostname", _MAX_HEADER_CHARS["hostname"]),
        platform=None if platform is None else platform.lower(),
        version=_optional_header(headers, "x-agent-version", _MAX_HEADER_CHARS["version"]),
        info=parse_agent_info(headers.get("x-agent-info")),
        current_jobs=parse_current_jobs(headers.get("x-agent-current-jobs")),
    )
