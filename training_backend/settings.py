"""The backend's settings: flags (in the CLI) > ``TRAINING_BACKEND_*`` env vars > defaults."""

from __future__ import annotations

from pathlib import Path

from fastapi import Request
from platformdirs import user_data_dir
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

APP_NAME = "training-backend"


def default_database_url() -> str:
    """A SQLite file in this user's data directory, e.g. ``~/.local/share/training-backend``."""
    path = Path(user_data_dir(APP_NAME, appauthor=False)) / "backend.sqlite3"
    return f"sqlite:///{path}"


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

    housekeeping_interval_seconds: float = Field(default=5.0, gt=0, le=3600)
    """How often the background task looks for expired leases."""


def get_settings(request: Request) -> BackendSettings:
    """FastAPI dependency: the settings the app was created with (tests override it)."""
    settings: BackendSettings = request.app.state.settings
    return settings
