"""How one artifact upload session ends, and the failures that end it (``reporting.artifacts``)."""

from __future__ import annotations

import enum

from training_agent.errors import ConflictError
from training_agent.reporting.artifact_rows import ArtifactRow


class Step(enum.Enum):
    """How one upload session ended."""

    COMPLETE = "complete"  # the server verified it
    CHANGED = "changed"  # the output changed under us
    CORRUPT = "corrupt"  # the server found it corrupt (or lost it)
    GONE = "gone"  # the row is gone: the job was finished or abandoned meanwhile


class GiveUp(Exception):
    """This upload cannot succeed; the message is the sentence that says why."""


class JobGone(Exception):
    """The backend no longer accepts the job's reports."""


class Corrupt(Exception):
    """The server discarded the artifact (``ARTIFACT_CORRUPT``) or does not know it."""


class Gap(Exception):
    """The server expects another offset (``ARTIFACT_GAP``)."""

    def __init__(self, expected: int) -> None:
        super().__init__(f"the backend expects offset {expected}")
        self.expected = expected

    @classmethod
    def from_error(cls, exc: ConflictError, row: ArtifactRow) -> Exception:
        expected = exc.body.get("expected_offset") if isinstance(exc.body, dict) else None
        size = row.size_bytes or 0
        if isinstance(expected, int) and not isinstance(expected, bool) and 0 <= expected <= size:
            return cls(expected)
        return GiveUp(f"the backend answered a gap without a usable offset: {exc}")
