"""The agent's settings: one ``Settings`` object, built once by the CLI and passed down.

Sources, highest first (the order is deliberate):

1. command-line flags (passed to :func:`load_settings` as keyword arguments);
2. the environment: ``API_KEY`` and ``BACKEND_URL``, and every setting ``x`` as
   ``TRAINING_AGENT_X`` (e.g. ``TRAINING_AGENT_CANCEL_GRACE_SECONDS=60``);
3. ``config.toml`` in the config directory;
4. the defaults below.

The API key is never read from ``config.toml``: a key in a plain file next to the
settings is how the FineTune Lab agent leaked them. It comes from the environment (for
containers) or from the credential store that ``training-agent login`` fills
(credentials.py).
"""

from __future__ import annotations

import contextvars
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from training_agent.errors import ConfigError
from training_agent.job_policy import JobPolicy

#: The labels a job's requirements may name: what the backend accepts too.
LABEL = re.compile(r"^[a-z0-9][a-z0-9._-]{0,39}$")
MAX_LABELS = 32

_CONFIG_FILE: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "training_agent_config_file", default=None
)


class Settings(BaseSettings):
    """Everything the agent can be told. Every field is also ``TRAINING_AGENT_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="TRAINING_AGENT_",
        extra="forbid",
        populate_by_name=True,
        case_sensitive=False,
    )

    backend_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("backend_url", "BACKEND_URL", "TRAINING_AGENT_BACKEND_URL"),
    )
    """The platform to take jobs from, e.g. ``https://app.example.com``."""

    api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("api_key", "API_KEY", "TRAINING_AGENT_API_KEY"),
        exclude=True,
    )
    """A ``wak_`` key with the ``training`` scope; environment only, never config.toml."""

    allow_command_jobs: bool = False
    """Run jobs of type ``command`` (arbitrary programs). Off: a stolen key must not mean
    remote code execution on this machine."""

    allow_remote_code: bool = False
    """Let a job's ``trust_remote_code`` run the Python that a model repository ships.
    Off: a job config is data; models that transformers supports natively still train
    (the flag is ignored, with one line in the job log), models that need their own code
    fail with a sentence naming this setting."""

    trusted_model_sources: Annotated[tuple[str, ...], NoDecode] = ()
    """Narrower than ``allow_remote_code``: the model repositories whose code jobs may run,
    as ids (``my-org/my-model``) or prefixes ending in ``/`` (``my-org/``). Environment:
    comma-separated."""

    data_dirs: Annotated[tuple[Path, ...], NoDecode] = ()
    """Folders whose files jobs may read by local path (model and tokenizer folders,
    ``dataset_path``, ``checkpoint_resume``), besides the job's own work folder and the
    dataset cache. Environment: paths joined by the OS path separator (``:`` on POSIX)."""

    allow_private_urls: bool = False
    """Let a job's dataset URL reach loopback, link-local and private addresses (an
    internal data server). Off: only public addresses; cloud metadata addresses never."""

    max_dataset_download_gb: float = Field(default=50.0, gt=0)
    """The largest dataset a job may download from a URL, in GB."""

    training_python: str | None = None
    """The Python that runs the built-in Hugging Face trainer (needs torch and transformers);
    unset: the agent's own interpreter. ``training-agent runtime setup`` sets it."""

    cancel_grace_seconds: float = Field(default=30.0, ge=0, le=3600)
    """After SIGTERM, how long a cancelled job may take to checkpoint before it is killed."""

    max_jobs: int | None = Field(default=None, ge=1)
    """Exit after this many jobs (one-shot use); unset runs until stopped."""

    request_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    """Read timeout of one request to the backend (long polls add their hold time)."""

    min_poll_interval_seconds: float = Field(default=2.0, ge=0.1, le=300)
    """Floor for the server's ``poll_interval_seconds``, so a bad server cannot make the
    agent hammer it."""

    auth_retry_seconds: float = Field(default=300.0, ge=1, le=3600)
    """While the backend rejects the API key: the wait between two tries (plus up to 20 %)."""

    max_concurrent_jobs: int = Field(default=1, ge=1, le=64)
    """How many jobs run at the same time."""

    labels: Annotated[tuple[str, ...], NoDecode] = ()
    """What this machine offers, as short slugs (``a100``, ``eu-west``): sent with every
    poll, so a job whose ``requirements`` name labels goes only to agents that have them
    all. Environment: comma-separated (``TRAINING_AGENT_LABELS=a100,fast``)."""

    gpus: str = "all"
    """GPUs the jobs may use: ``all``, ``none``, or indices like ``0,1``. With several
    jobs at a time each gets its share through ``CUDA_VISIBLE_DEVICES``."""

    min_free_disk_gb: float = Field(default=1.0, ge=0)
    """Claim no job while the work directory's disk has less free space than this."""

    job_retention_days: float = Field(default=7.0, ge=0)
    """A finished job's work directory (checkpoints, outputs) and outbox row are removed
    this many days after it ended, once all its reports and uploads were delivered;
    0: as soon as they were (``pruning`` says why a week)."""

    max_log_lines_per_job: int = Field(default=100_000, ge=10)
    """A longer job log keeps its first and last lines around one notice saying how many
    lines were skipped."""

    upload_artifacts: bool = True
    """Upload a completed job's declared outputs (adapter, model, files) to a backend that
    takes artifacts; off: they stay in the job's work directory."""

    max_artifact_gb: float = Field(default=100.0, gt=0)
    """An output larger than this is not uploaded (the job log says so and names its path)."""

    heartbeat_interval_seconds: float = Field(default=10.0, ge=1, le=15)
    """How often a running job's heartbeat goes out (a v1 backend: its status is read)."""

    idle_exit_seconds: float | None = Field(default=None, gt=0)
    """Exit (code 0) after this long without a job; unset runs until stopped."""

    log_level: str = "INFO"
    """Level of the agent's own log: DEBUG, INFO, WARNING or ERROR."""

    auto_update: bool | None = None
    """Install the version the backend offers (``agent_update``) by itself: verified
    (SHA-256 and the release signature), after the running jobs, rolled back when it does
    not poll within ``update_trial_seconds``. Default: on for the executable the installers
    put in place, off for a pip or pipx install (it logs how to upgrade) and an unpacked
    archive."""

    update_trial_seconds: float = Field(default=120.0, ge=5, le=3600)
    """How long a new version has to reach its first successful poll after a self-update
    before the previous version is put back; raise it where the way to the backend is
    slow to come up."""

    metrics_without_token: bool = False
    """Serve the status API's ``/metrics`` without the bearer token, so a local Prometheus
    can scrape it; every other endpoint still needs the token. Loopback only either way."""

    @field_validator("backend_url")
    @classmethod
    def _normalise_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        url = value.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return url

    def job_policy(self) -> JobPolicy:
        """What these settings let a job config do (``training_agent.job_policy``)."""
        return JobPolicy(
            allow_remote_code=self.allow_remote_code,
            trusted_model_sources=self.trusted_model_sources,
            data_dirs=tuple(str(path) for path in self.data_dirs),
            allow_private_urls=self.allow_private_urls,
            max_download_bytes=int(self.max_dataset_download_gb * 10**9),
        )

    @field_validator("trusted_model_sources", mode="before")
    @classmethod
    def _split_sources(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("labels", mode="before")
    @classmethod
    def _split_labels(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) > MAX_LABELS:
            raise ValueError(f"at most {MAX_LABELS} labels, not {len(value)}")
        for label in value:
            if not LABEL.fullmatch(label):
                raise ValueError(
                    f"{label[:40]!r} is not a short slug: use lower-case letters, digits, "
                    "'.', '_' and '-', starting with a letter or digit, at most 40 characters"
                )
        return tuple(dict.fromkeys(value))

    @field_validator("data_dirs", mode="before")
    @classmethod
    def _split_dirs(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part for part in value.split(os.pathsep) if part.strip()]
        return value

    @field_validator("data_dirs")
    @classmethod
    def _absolute_dirs(cls, value: tuple[Path, ...]) -> tuple[Path, ...]:
        dirs = tuple(path.expanduser() for path in value)
        relative = [str(path) for path in dirs if not path.is_absolute()]
        if relative:
            raise ValueError(f"must be absolute paths, not {relative[0]!r}")
        return dirs

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return level

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # No .env file and no secrets dir: flags > environment > config.toml.
        toml = InitSettingsSource(settings_cls, init_kwargs=_read_toml(_CONFIG_FILE.get()))
        return (init_settings, env_settings, toml)


def load_settings(*, config_file: Path | None, **flags: Any) -> Settings:
    """Build the settings from flags (``None`` values are ignored), env and ``config_file``.

    Raises ``ConfigError`` with one sentence naming the bad setting and where it came from.
    """
    given = {name: value for name, value in flags.items() if value is not None}
    token = _CONFIG_FILE.set(config_file)
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, config_file)) from exc
    finally:
        _CONFIG_FILE.reset(token)


def _read_toml(path: Path | None) -> dict[str, Any]:
    if path is None or not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}; fix or delete the file") from exc
    if "api_key" in data:
        raise ConfigError(
            f"{path} contains api_key; the key must not live in config.toml: remove the "
            "line and store the key with 'training-agent login' (or set API_KEY)"
        )
    return data


def _describe(exc: ValidationError, config_file: Path | None) -> str:
    first = exc.errors()[0]
    name = ".".join(str(part) for part in first["loc"]) or "settings"
    where = f" (flags, environment or {config_file})" if config_file else ""
    if first["type"] == "extra_forbidden":
        return f"unknown setting '{name}'{where}; check its spelling"
    return f"invalid setting '{name}'{where}: {first['msg']}"
