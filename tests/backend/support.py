"""What the backend tests share besides fixtures (those live in conftest.py): the caller
of an agent route, job-token headers, and the fixture factories' types."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from training_backend.db.models import TrainingJob, User

AGENT_ID = "agent_0123456789abcdef"


@dataclass(frozen=True)
class Caller:
    """A user with an API key, and the headers an agent of theirs sends."""

    user: User
    key: str

    def headers(self, agent_id: str | None = AGENT_ID, **extra: str) -> dict[str, str]:
        """``Authorization`` with the key, ``X-Agent-ID`` unless ``None``, plus ``extra``."""
        headers = {"Authorization": f"Bearer {self.key}", **extra}
        if agent_id is not None:
            headers["X-Agent-ID"] = agent_id
        return headers


#: The header every JSON body must come with (else 415).
JSON = {"Content-Type": "application/json"}


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header of a job-token call."""
    return {"Authorization": f"Bearer {token}"}


def reload(db: Session, job: TrainingJob) -> TrainingJob:
    """``job`` as the database has it now."""
    db.expire_all()
    fresh = db.get(TrainingJob, job.id)
    assert fresh is not None
    return fresh


MakeJob = Callable[..., TrainingJob]
MakeRunningJob = Callable[..., tuple[TrainingJob, str]]
MakeKey = Callable[..., Caller]
