"""What the service tests share: a recording fake runner and specs in a temp dir."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from training_agent.paths import AgentPaths
from training_agent.service.shell import Ran
from training_agent.service.spec import ServiceSpec


@dataclass
class FakeRunner:
    """Records every command; answers from ``answers`` (first matching prefix wins),
    else exit 0 with no output. ``missing`` tools answer as not installed."""

    answers: dict[tuple[str, ...], tuple[int, str]] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def __call__(self, argv: Sequence[str]) -> Ran:
        command = tuple(argv)
        self.calls.append(command)
        if command[0] in self.missing:
            return Ran(command, None)
        for prefix, (code, output) in self.answers.items():
            if command[: len(prefix)] == prefix:
                return Ran(command, code, output)
        return Ran(command, 0, "")


def make_spec(tmp_path: Path, **overrides: object) -> ServiceSpec:
    values: dict[str, object] = {
        "program": (sys.executable, "-m", "training_agent"),
        "paths": AgentPaths.under(tmp_path / "agent"),
        "cancel_grace_s": 45.0,
        "environment": {"HTTPS_PROXY": "http://proxy.example:3128", "NO_PROXY": "localhost"},
    }
    values.update(overrides)
    return ServiceSpec(**values)  # type: ignore[arg-type]
