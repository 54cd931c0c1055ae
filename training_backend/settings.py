"""The backend's settings: flags (in the CLI) > ``TRAINING_BACKEND_*`` env vars > defaults."""

from __future__ import annotations

import re
from pathlib import Path

from platformdirs import user_data_dir
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

APP_NAME = "training-backend"


def default_database_url() -> str:
    """A SQLite file in this user's data directory, e.g. ``~/.local/share/training-backend``."""
    path = Path(user_data_dir(APP_NAME, appauthor=False)) / "backend.sqlite3"
    return f"sqlite:///{path}"


#: A release version as it appears in artifact names: ``0.2.0``, ``1.4.2rc1``, ``0.3.0-beta.2``.
AGENT_VERSION_PATTERN = r"^[0-9]+\.[0-9]+\.[0-9]+[0-9A-Za-z.+-]{0,32}$"


#: A base URL safe to paste into shell and PowerShell commands (no quotes, spaces, query).
PUBLIC_URL_PATTERN = r"^https?://[A-Za-z0-9.:\[\]-]+(/[A-Za-z0-9._~/%-]*)?$"


#: An http(s) URL of a releases folder, ``{version}`` allowed (no quotes, spaces, query).
RELEASES_URL_PATTERN = r"^https?://[A-Za-z0-9.:\[\]-]+(/[A-Za-z0-9._~/%{}-]*)?$"


def version_tuple(version: str) -> tuple[int, int, int]:
    """The numeric major, minor and patch of a release version.

    >>> version_tuple("0.2.1rc1")
    (0, 2, 1)
    """
    numbers = re.match(r"([0-9]+)\.([0-9]+)\.([0-9]+)", version)
    if numbers is None:
        raise ValueError(f"not a release version: {version!r}")
    major, minor, patch = (int(part) for part in numbers.groups())
    return major, minor, patch


def default_releases_dir() -> Path:
    """``releases`` in this user's data directory."""
    return Path(user_data_dir(APP_NAME, appauthor=False)) / "releases"


class BackendSettings(BaseSettings):
    """Everything the backend reads from its environment; built once at the entry point."""

    model_config = SettingsConfigDict(env_prefix="TRAINING_BACKEND_", extra="ignore")

    database_url: str = Field(default_factory=default_database_url)
    """SQLAlchemy URL of the database: ``sqlite:///path`` or ``postgresql+psycopg://…``."""

    host: str = "127.0.0.1"
    """Interface `serve` binds to; loopback unless you put it behind a proxy on purpose."""

    port: int = Field(default=8000, ge=0, le=65535)
    """TCP port `serve` listens on."""

    poll_interval_seconds: int = Field(default=10, ge=1, le=3600)
    """How long agents wait between polls (sent in every poll answer)."""

    lease_seconds: int = Field(default=90, ge=5, le=86_400)
    """How long a claimed job stays an agent's without a heartbeat or report from it."""

    datasets_dir: Path | None = None
    """Where uploaded datasets are kept (default: ``datasets`` next to the SQLite file,
    else in the user data directory). Replicas sharing one database need a shared one."""

    max_dataset_bytes: int = Field(default=1024**3, ge=1)
    """Largest dataset upload accepted (default 1 GiB)."""

    artifacts_dir: Path | None = None
    """Where artifacts (the files jobs send back) are kept when ``artifacts_url`` is unset
    (default: ``artifacts`` next to the SQLite file, else in the user data directory)."""

    artifacts_url: str | None = Field(
        default=None, pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$"
    )
    """An S3-compatible bucket for artifacts instead of the directory, ``s3://bucket/prefix``;
    replicas sharing one database share it. Credentials, region and endpoint come from the
    usual ``AWS_*`` variables or files (``AWS_ENDPOINT_URL`` for a non-AWS server)."""

    artifact_quota_gb: float = Field(default=100.0, gt=0)
    """Artifact bytes each user may keep, in GB (10^9 bytes), unfinished uploads included."""

    artifact_max_chunk_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024, le=64 * 1024**2)
    """Largest chunk of an artifact upload one request may carry (default 8 MiB)."""

    artifact_abandoned_hours: float = Field(default=72.0, gt=0)
    """An unfinished upload untouched for this long is removed by ``artifacts gc``."""

    housekeeping_interval_seconds: float = Field(default=5.0, gt=0, le=3600)
    """How often the background task looks for expired leases."""

    online_threshold_seconds: int = Field(default=60, ge=1, le=86_400)
    """An agent that polled within this long counts as online."""

    agent_retention_days: int = Field(default=30, ge=1, le=36_500)
    """Agents unseen for this long are forgotten (revoked ones are kept)."""

    session_lifetime_hours: int = Field(default=168, ge=1, le=8760)
    """How long a web sign-in (session token or cookie) stays valid."""

    enrollment_ttl_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    """How long an enrollment token (in an agent download) stays usable."""

    rate_limit_per_minute: int = Field(default=600, ge=0)
    """Requests one API key may make per minute on average, per process (0: no limit)."""

    rate_limit_burst: int = Field(default=600, ge=1)
    """Requests one API key may make in a burst (the bucket's size)."""

    max_long_polls_per_key: int = Field(default=16, ge=0, le=100_000)
    """Long polls one API key may hold at once in one backend process (0: no cap); a poll
    beyond it is answered at once, like a plain poll, and its agent polls again after
    ``poll_interval_seconds``."""

    agent_version: str = Field(default="0.2.0", pattern=AGENT_VERSION_PATTERN)
    """Version of the agent the download endpoint serves (at least 0.2.0)."""

    allow_agent_downgrade: bool = False
    """Offer agents newer than ``agent_version`` that version too (``agent_update`` with
    ``"downgrade": true``); off: newer agents are left alone."""

    min_agent_version: str | None = Field(default=None, pattern=AGENT_VERSION_PATTERN)
    """Oldest agent allowed to poll and claim, e.g. ``0.3.0`` (compared on major.minor.patch
    with ``X-Agent-Version``); older agents, and agents that send no version, get 426
    ``AGENT_UPGRADE_REQUIRED`` with the download URL. Unset: every version is accepted."""

    releases_dir: Path = Field(default_factory=default_releases_dir)
    """Folder of agent release archives and their ``SHA256SUMS``."""

    releases_url: str | None = Field(default=None, pattern=RELEASES_URL_PATTERN)
    """Where to fetch agent releases that are not in ``releases_dir`` yet, e.g.
    ``https://github.com/OWNER/REPO/releases/download/v{version}`` (``{version}`` becomes
    ``agent_version``): the folder holding the archives and their ``SHA256SUMS``. An
    archive is fetched the first time it is asked for, checked against that file and
    kept in ``releases_dir``. Unset: only what ``releases add`` put there is served."""

    public_url: str | None = Field(default=None, pattern=PUBLIC_URL_PATTERN)
    """This backend's URL as agents reach it, e.g. ``https://train.example.com``
    (default: taken from each request)."""

    api_docs: bool = False
    """Serve the interactive API documentation (``/docs``, ``/redoc``, ``/openapi.json``);
    off by default, so a public backend does not hand out a map of its API. Env
    ``TRAINING_BACKEND_API_DOCS=1``."""

    cookie_secure: bool = False
    """Always mark the session cookie ``Secure`` and send ``Strict-Transport-Security``:
    set it when TLS ends at a proxy that does not pass ``X-Forwarded-Proto``. Without it
    both follow the request's scheme (https, as uvicorn sees it)."""

    forwarded_allow_ips: str = "127.0.0.1"
    """Addresses of the reverse proxies whose ``X-Forwarded-For`` and
    ``X-Forwarded-Proto`` headers `serve` believes (comma-separated, or ``*``): the
    client address the sign-in throttle counts, and the scheme, come from them. Set it
    to your proxy's address; never ``*`` when clients can reach the backend directly."""

    job_rate_limit_per_minute: int = Field(default=600, ge=0)
    """Requests one job's token may make per minute on average, per process (0: no
    limit); an agent reports about once a second."""

    job_rate_limit_burst: int = Field(default=300, ge=1)
    """Requests one job's token may make in a burst (the bucket's size)."""

    max_datasets_per_user: int = Field(default=1000, ge=0)
    """Datasets one user may keep on the backend (0: no limit)."""

    max_dataset_storage_bytes_per_user: int = Field(default=50 * 1024**3, ge=0)
    """Bytes of datasets one user may keep on the backend (default 50 GiB; 0: no limit)."""

    max_api_keys_per_user: int = Field(default=100, ge=0)
    """Unrevoked API keys one user may have (enrolled agents' keys count; 0: no limit)."""

    max_pending_enrollments_per_user: int = Field(default=50, ge=0)
    """Unused, unexpired enrollment tokens (agent downloads) one user may have at once
    (0: no limit)."""

    @field_validator("agent_version")
    @classmethod
    def _at_least_0_2_0(cls, version: str) -> str:
        if version_tuple(version) < (0, 2, 0):
            raise ValueError(f"agent_version must be 0.2.0 or newer, not {version}")
        return version

    @field_validator("public_url", "releases_url")
    @classmethod
    def _without_trailing_slash(cls, url: str | None) -> str | None:
        return None if url is None else url.rstrip("/")
