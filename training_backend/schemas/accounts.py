"""Bodies of the sign-in, API-key and agents endpoints (used by the Training Agent page)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from training_backend.db.models import ApiKey, TrainingAgent, TrainingJob, User
from training_backend.schemas.jobs import JobPublic


class LoginRequest(BaseModel):
    """``POST /api/auth/login``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=200)
    password: str = Field(max_length=1024)


class UserPublic(BaseModel):
    """A user as they see themselves."""

    id: str
    name: str
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> Self:
        """This view of ``user``."""
        return cls.model_validate(user, from_attributes=True)


class LoginAnswer(BaseModel):
    """A new session: its token (also set as a cookie), when it ends, and who it is."""

    token: str
    expires_at: datetime
    user: UserPublic


class Done(BaseModel):
    """An action that worked and has nothing else to say."""

    success: bool = True


class SessionsEnded(BaseModel):
    """``POST /api/auth/sessions/revoke-all``: how many sessions were ended."""

    success: bool = True
    sessions_ended: int


class ApiKeyCreate(BaseModel):
    """``POST /api/user/api-keys``: a label and the scopes (default ``training``)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(default_factory=lambda: ["training"], max_length=10)


class ApiKeyPublic(BaseModel):
    """A key as listed: never its hash, and its value only once, at creation."""

    id: str
    name: str
    key_prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    is_active: bool

    @classmethod
    def of(cls, row: ApiKey) -> Self:
        """This view of ``row``."""
        return cls(
            id=row.id,
            name=row.name,
            key_prefix=row.prefix,
            scopes=list(row.scopes),
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            is_active=row.revoked_at is None,
        )


class ApiKeyWithSecret(ApiKeyPublic):
    """The new key, with its value (``wak_…``) shown this once."""

    key: str


class ApiKeyCreated(BaseModel):
    """Answer to a key creation (FineTune Lab's shape)."""

    success: bool = True
    apiKey: ApiKeyWithSecret  # camelCase: the name FineTune Lab's page reads
    message: str = "Save this key now: it is shown only once"


class ApiKeyList(BaseModel):
    """The caller's active keys, newest first."""

    api_keys: list[ApiKeyPublic]


class CurrentJob(BaseModel):
    """A job an agent is running, as its card shows it."""

    id: str
    status: str
    model_name: str | None
    progress: float | None
    current_step: int | None
    total_steps: int | None

    @classmethod
    def of(cls, job: TrainingJob) -> Self:
        """This view of ``job``."""
        return cls.model_validate(job, from_attributes=True)


class AgentView(BaseModel):
    """An agent row with its live state: every column, ``status`` recomputed."""

    id: str
    user_id: str
    agent_id: str
    hostname: str | None
    platform: str | None
    version: str | None
    status: str
    is_online: bool
    last_poll_at: datetime | None
    registered_at: datetime
    metadata: dict[str, Any]
    revoked_at: datetime | None
    revoked: bool
    current_jobs: list[CurrentJob]
    labels: list[str] = []
    """Its ``labels`` setting, as its last poll said."""
    connected_now: bool = False
    """It holds a long poll right now (so it takes a job the moment one comes)."""

    @classmethod
    def of(
        cls,
        agent: TrainingAgent,
        *,
        online: bool,
        current_jobs: list[TrainingJob],
        connected: bool = False,
    ) -> Self:
        """This view of ``agent``; ``connected``: it holds a poll (``is_connected``)."""
        info = (agent.metadata_ or {}).get("info")
        labels = info.get("labels") if isinstance(info, dict) else None
        return cls(
            labels=[label for label in labels if isinstance(label, str)]
            if isinstance(labels, list)
            else [],
            connected_now=connected and agent.revoked_at is None,
            id=agent.id,
            user_id=agent.user_id,
            agent_id=agent.agent_id,
            hostname=agent.hostname,
            platform=agent.platform,
            version=agent.version,
            status="online" if online else "offline",
            is_online=online,
            last_poll_at=agent.last_poll_at,
            registered_at=agent.registered_at,
            metadata=dict(agent.metadata_ or {}),
            revoked_at=agent.revoked_at,
            revoked=agent.revoked_at is not None,
            current_jobs=[CurrentJob.of(job) for job in current_jobs],
        )


class AgentList(BaseModel):
    """``GET /api/training/agents``."""

    agents: list[AgentView]
    online_threshold_seconds: int


class AgentDetail(AgentView):
    """One agent with the counts of this user's jobs it ran."""

    total_jobs: int
    completed_jobs: int
    failed_jobs: int
    running_jobs: int


class AgentAnswer(BaseModel):
    """``GET /api/training/agents/{agent_id}`` and the revoke/enable answers."""

    agent: AgentDetail


class AgentJobsPage(BaseModel):
    """A page of an agent's jobs, newest claim first."""

    jobs: list[JobPublic]
    total: int
    limit: int
    offset: int
