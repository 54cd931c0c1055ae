"""Builds a running agent from settings and paths: the one place the parts are wired."""

from __future__ import annotations

import asyncio
import logging

from pydantic import SecretStr

from training_agent.api import BackendClient
from training_agent.config import Settings, load_settings
from training_agent.daemon import Daemon, DaemonOptions, install_signal_handlers
from training_agent.errors import ConfigError, TrainingAgentError
from training_agent.identity import (
    LEGACY_AGENT_ID_FILE,
    detect_identity,
    load_or_create_agent_id,
)
from training_agent.logs import setup_logging
from training_agent.paths import AgentPaths
from training_agent.poller import Poller
from training_agent.reporting.outbox import Outbox
from training_agent.resources import GpuPool, ResourceMonitor
from training_agent.status.state import AgentState

log = logging.getLogger(__name__)


def stored_api_key(backend_url: str, paths: AgentPaths) -> SecretStr | None:
    """The key ``training-agent login`` stored for ``backend_url`` (keyring or file)."""
    from training_agent.credentials import CredentialStore

    key = CredentialStore(paths.config_dir).load(backend_url)
    return SecretStr(key) if key else None


def reread_api_key(paths: AgentPaths) -> SecretStr | None:
    """The API key as it is now (after the backend rejected the old one): ``API_KEY``
    in the environment first, else the credential store."""
    try:
        settings = load_settings(config_file=paths.config_file)
        if settings.api_key is not None or settings.backend_url is None:
            return settings.api_key
        return stored_api_key(settings.backend_url, paths)
    except TrainingAgentError as exc:
        log.warning("cannot read the API key again: %s", exc)
        return None


async def run_agent(settings: Settings, paths: AgentPaths) -> int:
    """Run the daemon in the foreground until it drains; the process exit code."""
    if settings.backend_url is None:
        raise ConfigError(
            "no backend URL: set BACKEND_URL (or backend_url in "
            f"{paths.config_file}) to your platform's address"
        )
    secret = settings.api_key or stored_api_key(settings.backend_url, paths)
    if secret is None:
        raise ConfigError(
            "no API key: run 'training-agent login' (or set API_KEY) with a key that has "
            "the 'training' scope from the platform's Training Agent page"
        )
    paths.ensure()
    api_key = secret.get_secret_value()
    setup_logging(settings.log_level, log_file=paths.log_file, secrets=(api_key,))
    # Under TRAINING_AGENT_HOME nothing outside it is read, not even a FineTune Lab id.
    legacy = None if paths.isolated else LEGACY_AGENT_ID_FILE
    agent_id = load_or_create_agent_id(paths.agent_id_file, legacy_path=legacy)
    identity = detect_identity(agent_id)
    log.info(
        "agent %s (training-agent %s on %s/%s) for %s",
        agent_id,
        identity.version,
        identity.platform,
        identity.hostname,
        settings.backend_url,
    )
    outbox = Outbox(paths.outbox_file, max_log_lines=settings.max_log_lines_per_job)
    client = BackendClient(
        base_url=settings.backend_url,
        api_key=secret,
        identity=identity,
        timeout_s=settings.request_timeout_seconds,
    )
    options = DaemonOptions(
        allow_command_jobs=settings.allow_command_jobs,
        cancel_grace_s=settings.cancel_grace_seconds,
        training_python=settings.training_python,
        max_jobs=settings.max_jobs,
        max_concurrent_jobs=settings.max_concurrent_jobs,
        idle_exit_s=settings.idle_exit_seconds,
        heartbeat_interval_s=settings.heartbeat_interval_seconds,
        min_free_disk_gb=settings.min_free_disk_gb,
        dataset_cache_dir=paths.cache_dir / "datasets",
    )
    state = AgentState(
        agent_id=agent_id, version=identity.version, backend_url=settings.backend_url
    )
    resources = ResourceMonitor(work_dir=paths.jobs_dir)
    gpus = GpuPool.from_setting(
        settings.gpus,
        max_concurrent_jobs=settings.max_concurrent_jobs,
        detect=resources.gpu_indices,
    )
    poller = Poller(
        client=client,
        state=state,
        min_interval_s=settings.min_poll_interval_seconds,
        auth_retry_s=settings.auth_retry_seconds,
        reload_key=lambda: reread_api_key(paths),
        headers=lambda: daemon.poll_headers(),
    )
    daemon = Daemon(
        client=client,
        outbox=outbox,
        jobs_dir=paths.jobs_dir,
        options=options,
        poller=poller,
        state=state,
        journals_dir=paths.state_dir / "jobs",
        resources=resources,
        gpus=gpus,
    )
    # Imported here: starlette, uvicorn and prometheus_client are the daemon's cost only.
    from training_agent.status.server import start_status_api
    from training_agent.status.usage import UsageSampler

    status_api = await start_status_api(
        state=state,
        daemon=daemon,
        status_path=paths.status_file,
        outbox_path=paths.outbox_file,
        metrics_without_token=settings.metrics_without_token,
        usage=UsageSampler(work_dir=paths.jobs_dir).sample,
    )
    remove_handlers = install_signal_handlers(asyncio.get_running_loop(), daemon.request_stop)
    try:
        return await daemon.run()
    finally:
        remove_handlers()
        if status_api is not None:
            await status_api.stop()
        await client.aclose()
        outbox.close()
