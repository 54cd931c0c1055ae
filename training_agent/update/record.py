"""What the self-update remembers across restarts: ``<state dir>/update.json``.

    {"attempts": {"0.3.0": {"outcome": "failed", "reason": "…", "at": 1765000000.0}},
     "trial": {"from_version": "0.2.0", "from_folder": "…/versions/0.2.0-a81c",
               "to_version": "0.3.0", "to_folder": "…/versions/0.3.0-k2x9",
               "deadline": 1765000120.0, "starts": 1}}

``attempts`` holds one entry per version ever tried (``installed``, ``confirmed`` or
``failed`` with why), so a version is switched to once: an update can never loop. Only a
failure before anything was switched that may pass by itself (the download: the backend
or its upstream down; a full disk) carries ``retry_at``, when the download is tried
again. ``trial`` is
set just before the switch to a new build and cleared when that build reached its first
successful poll (or was rolled back). The file is written to a temporary name and
renamed, so a crash leaves the old or the new content, never half of it.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FAILED = "failed"
INSTALLED = "installed"
CONFIRMED = "confirmed"


@dataclass
class Trial:
    """A new build on probation: where it came from, by when it must poll."""

    from_version: str
    from_folder: str
    to_version: str
    to_folder: str
    deadline: float  # wall-clock seconds (time.time): it must hold across a restart
    starts: int = 0


@dataclass
class UpdateRecord:
    """The contents of ``update.json``."""

    path: Path
    attempts: dict[str, dict[str, Any]] = field(default_factory=dict)
    trial: Trial | None = None

    @classmethod
    def load(cls, path: Path) -> UpdateRecord:
        """The record in ``path``; an empty one when it is missing or unreadable."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            attempts = {str(k): dict(v) for k, v in dict(data.get("attempts") or {}).items()}
            trial = Trial(**data["trial"]) if data.get("trial") else None
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.warning("ignoring the unreadable update record %s: %s", path, exc)
            return cls(path)
        return cls(path, attempts, trial)

    def attempted(self, version: str) -> dict[str, Any] | None:
        """What came of trying ``version``; None when it never was."""
        return self.attempts.get(version)

    def note(
        self,
        version: str,
        outcome: str,
        reason: str | None,
        at: float,
        *,
        retry_at: float | None = None,
    ) -> None:
        """Record what came of ``version`` (and save); ``retry_at``: a failure before
        anything was switched (the download, a full disk) that may be tried again then."""
        attempt: dict[str, Any] = {"outcome": outcome, "reason": reason, "at": at}
        if retry_at is not None:
            attempt["retry_at"] = retry_at
        self.attempts[version] = attempt
        self.save()

    def may_retry(self, version: str, now: float) -> bool:
        """Whether ``version`` failed before anything was switched and its wait is over."""
        retry_at = (self.attempts.get(version) or {}).get("retry_at")
        return isinstance(retry_at, int | float) and now >= retry_at

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"attempts": self.attempts, "trial": asdict(self.trial) if self.trial else None}
        partial = self.path.with_name(f".{self.path.name}.partial")
        partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(partial, self.path)
