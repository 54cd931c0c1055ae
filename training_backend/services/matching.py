"""Which agent may take which job: a job's ``requirements`` against an agent's profile.

    {"agent_id": "agent_…", "labels": ["a100", "fast"], "min_gpus": 2, "min_gpu_memory_gb": 40}

Every key is optional; ``{}`` is the same as none. An agent matches when it is the
agent named, has every label, and reports at least ``min_gpus`` free GPUs (not marked
``"busy"``) of at least ``min_gpu_memory_gb`` GB each. What an agent is comes from its
``X-Agent-Info`` (``labels``, ``gpus``, ``max_jobs``, ``busy_jobs``): an agent that
sends none (a protocol-v1 agent) matches only jobs without requirements, and an agent
whose job slots are all busy matches no job at all.

``check_requirements`` turns a submitted value into the stored one, or a 400 with a
sentence; ``waiting_for`` says in a few words why a pending job waits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from training_backend.errors import ApiError

KEYS = ("agent_id", "labels", "min_gpus", "min_gpu_memory_gb")
MAX_LABELS = 32
#: A label: lower-case letters, digits, ``.``, ``_`` and ``-``, starting with a letter
#: or digit, at most 40 characters (``a100``, ``eu-west``, ``cuda12.4``).
LABEL = re.compile(r"^[a-z0-9][a-z0-9._-]{0,39}$")
MAX_GPUS = 1024
MAX_GPU_MEMORY_GB = 100_000.0


def _invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_REQUIREMENTS", f"Invalid requirements: {message}")


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_labels(labels: Any, *, where: str = "labels") -> list[str]:
    """A list of distinct labels in the order given, or a 400 that says what is wrong."""
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise _invalid(f"{where} must be a list of strings")
    if len(labels) > MAX_LABELS:
        raise _invalid(f"{where} has {len(labels)} labels; at most {MAX_LABELS} are allowed")
    for label in labels:
        if not LABEL.fullmatch(label):
            shown = label[:40] + ("…" if len(label) > 40 else "")
            raise _invalid(
                f"label {shown!r} is not a short slug (lower-case letters, digits, '.', '_' "
                "and '-', starting with a letter or digit, at most 40 characters)"
            )
    return list(dict.fromkeys(labels))


def check_requirements(value: Any) -> dict[str, Any] | None:
    """The requirements to store (``None`` for none), or 400 ``INVALID_REQUIREMENTS``.

    The ``agent_id`` is only checked for its form here; ``jobs.create_job`` checks that
    it names an agent of the submitting user.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _invalid("requirements must be an object")
    unknown = sorted(str(key)[:40] for key in value if key not in KEYS)
    if unknown:
        raise _invalid(f"unknown key(s) {', '.join(unknown)}; known keys: {', '.join(KEYS)}")
    checked = {
        "agent_id": _agent_id(value.get("agent_id")),
        "labels": None if value.get("labels") is None else check_labels(value["labels"]),
        "min_gpus": _gpus(value.get("min_gpus")),
        "min_gpu_memory_gb": _gpu_memory(value.get("min_gpu_memory_gb")),
    }
    kept = {key: given for key, given in checked.items() if given}  # 0, [] and "" ask nothing
    return kept or None


def _agent_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _invalid("agent_id must be an agent's id (a string)")
    return value.strip()


def _gpus(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_GPUS:
        raise _invalid(f"min_gpus must be a whole number from 0 to {MAX_GPUS}")
    return value


def _gpu_memory(value: Any) -> float | int | None:
    if value is None:
        return None
    if not _number(value) or not 0 <= value <= MAX_GPU_MEMORY_GB:
        raise _invalid("min_gpu_memory_gb must be a number of GB from 0 to 100000")
    return value


@dataclass(frozen=True)
class AgentProfile:
    """What an agent's poll says about the jobs it can take."""

    agent_id: str
    informed: bool = False
    """It sent ``X-Agent-Info``; a v1 agent does not."""
    labels: frozenset[str] = frozenset()
    gpus_gb: tuple[float, ...] = ()
    """The memory of each of its GPUs."""
    free_gpus_gb: tuple[float, ...] = ()
    """The memory of each GPU no job of it holds (not marked ``busy``)."""
    full: bool = False
    """Every job slot is busy: it can take nothing now."""

    @classmethod
    def of(cls, agent_id: str, info: Mapping[str, Any] | None) -> AgentProfile:
        """The profile of an agent that sent ``info`` (``None``: it sent none)."""
        if info is None:
            return cls(agent_id)
        raw = info.get("labels")
        labels = [label for label in raw if isinstance(label, str)] if isinstance(raw, list) else []
        gpus = [gpu for gpu in info.get("gpus") or () if isinstance(gpu, dict)]
        free = tuple(_memory_gb(gpu) for gpu in gpus if gpu.get("busy") is not True)
        slots, busy = info.get("max_jobs"), info.get("busy_jobs")
        full = _number(slots) and _number(busy) and busy >= slots
        all_gb = tuple(_memory_gb(gpu) for gpu in gpus)
        return cls(agent_id, True, frozenset(labels), all_gb, free, bool(full))

    def accepts(self, requirements: Mapping[str, Any] | None) -> bool:
        """Whether this agent may be offered a job with ``requirements`` now."""
        if self.full:
            return False
        if not requirements:
            return True
        return self.informed and _meets(self, requirements, self.free_gpus_gb)

    def could_ever(self, requirements: Mapping[str, Any] | None) -> bool:
        """Whether it would match with all its jobs and GPUs free (what a claim checks)."""
        if not requirements:
            return True
        return self.informed and _meets(self, requirements, self.gpus_gb)


def _memory_gb(gpu: Mapping[str, Any]) -> float:
    memory = gpu.get("memory_gb")
    return float(memory) if _number(memory) else 0.0


def _meets(
    profile: AgentProfile, requirements: Mapping[str, Any], gpus_gb: tuple[float, ...]
) -> bool:
    wanted = requirements.get("agent_id")
    if wanted is not None and wanted != profile.agent_id:
        return False
    if not profile.labels.issuperset(requirements.get("labels") or ()):
        return False
    count = int(requirements.get("min_gpus") or 0)
    memory = float(requirements.get("min_gpu_memory_gb") or 0.0)
    if not count and not memory:
        return True
    return sum(1 for gb in gpus_gb if gb >= memory) >= max(count, 1)


def describe(requirements: Mapping[str, Any]) -> str:
    """The agent a job waits for, in words: ``an agent with labels a100 and 2 GPUs…``."""
    agent_id = requirements.get("agent_id")
    who = f"agent {agent_id}" if agent_id else "an agent"
    parts = []
    if labels := requirements.get("labels"):
        parts.append(f"label{'s' if len(labels) > 1 else ''} {', '.join(labels)}")
    gpus = requirements.get("min_gpus")
    memory = requirements.get("min_gpu_memory_gb")
    if gpus or memory:
        count = f"{gpus} free GPU{'s' if (gpus or 1) > 1 else ''}" if gpus else "a free GPU"
        parts.append(count + (f" of at least {memory:g} GB" if memory else ""))
    return who + (" with " + " and ".join(parts) if parts else "")


def waiting_for(requirements: Mapping[str, Any] | None, online: Iterable[AgentProfile]) -> str:
    """Why a pending job waits, given the profiles of the user's agents online now.

    >>> waiting_for({"labels": ["a100"]}, [])
    'an agent with label a100 (none online)'
    """
    agents = list(online)
    wanted = describe(requirements or {})
    if not any(agent.could_ever(requirements) for agent in agents):
        return f"{wanted} (none online)"
    if any(agent.accepts(requirements) for agent in agents):
        return f"{wanted} to poll (one that matches is online)"
    return f"{wanted} (the ones online are busy)"
