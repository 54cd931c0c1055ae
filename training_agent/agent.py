"""Builds a running agent from settings and paths: the one place the parts are wired.

``build_agent`` is used by ``training-agent start`` (through ``run_agent``) and by the
tests alike; a test passes what it fakes (the transport, the clock, the sleep):

    agent = build_agent(settings, paths, api_key=key, transport=httpx.MockTransport(fake))
    try:
        code = await agent.daemon.run()
    finally:
        await agent.aclose()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from training_agent.api import BackendClient
from training_agent.config import Settings, load_settings
from training_agent.daemon import EXIT_UPDATE, Daemon, DaemonOptions, install_signal_handlers
from training_agent.dataset_cache import DatasetCache
from training_agent.errors import ConfigError, TrainingAgentError
from training_agent.executor.dataset import DatasetFetcher
from training_agent.executor.workspace import narrow_workspaces
from training_agent.gpus import load_nvml
from training_agent.identity import (
    LEGACY_AGENT_ID_FILE,
    AgentIdentity,
    detect_identity,
    load_or_create_agent_id,
)
from training_agent.job_slot import JobOptions, JobSlots
from training_agent.logs import setup_logging
from training_agent.paths import AgentPaths
from training_agent.poller import Poller
from training_agent.pruning import JobPruner
from training_agent.reporting.artifacts import ArtifactUploader
from training_agent.reporting.outbox import Outbox
from training_agent.reporting.uploader import Uploader
from training_agent.resources import GpuPool, ResourceMonitor
from training_agent.status.state import AgentState
from training_agent.supervise import supervise
from training_agent.update.setup import build_updater
from training_agent.update.updater import Updater

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
EXIT_CRASHED = 1  # an unexpected error ended the agent (the CLI's "1 error")


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


def require_api_key(settings: Settings, paths: AgentPaths) -> SecretStr:
    """The API key to use (``API_KEY``, else the stored one); raises ``ConfigError`` saying
    what to do when the backend URL or the key is missing."""
    secret = settings.api_key or stored_api_key(_backend_url(settings, paths), paths)
    if secret is None:
        raise ConfigError(
            "no API key: run 'training-agent login' (or set API_KEY) with a key that has "
            "the 'training' scope from the platform's Training Agent page"
        )
    return secret


@dataclass
class Agent:
    """One agent's parts as ``build_agent`` wired them."""

    settings: Settings
    paths: AgentPaths
    identity: AgentIdentity
    client: BackendClient
    outbox: Outbox
    state: AgentState
    daemon: Daemon
    updater: Updater

    async def run(self) -> int:
        """Serve the status API, route stop signals, and run the daemon until it drains;
        the process exit code. Closes the agent's parts at the end."""
        # Imported here: starlette, uvicorn and prometheus_client are the daemon's cost only.
        from training_agent.status.server import start_status_api
        from training_agent.status.usage import UsageSampler

        try:
            status_api = await start_status_api(
                state=self.state,
                daemon=self.daemon,
                status_path=self.paths.status_file,
                outbox_path=self.paths.outbox_file,
                metrics_without_token=self.settings.metrics_without_token,
                usage=UsageSampler(work_dir=self.paths.jobs_dir).sample,
            )
            keeper = None
            if status_api is not None:
                keeper = asyncio.create_task(
                    supervise(
                        "the status API", status_api.serve, on_problem=self.state.set_problem
                    ),
                    name="status-api-keeper",
                )
            loop = asyncio.get_running_loop()
            remove_handlers = install_signal_handlers(loop, self.daemon.request_stop)
            trial = asyncio.create_task(self.updater.watch_trial(), name="update-trial")
            try:
                return await self.daemon.run()
            finally:
                trial.cancel()
                remove_handlers()
                if status_api is not None:
                    await status_api.stop()
                if keeper is not None:
                    keeper.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await keeper
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool and the outbox."""
        await self.client.aclose()
        self.outbox.close()


def build_agent(
    settings: Settings,
    paths: AgentPaths,
    *,
    api_key: SecretStr | None = None,
    identity: AgentIdentity | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    rng: Callable[[], float] = random.random,
    nvml_loader: Callable[[], Any] = load_nvml,
) -> Agent:
    """Wire one agent from ``settings`` and ``paths``; nothing runs until ``Agent.run``.

    ``api_key`` defaults to ``require_api_key``'s, ``identity`` to this machine's with the
    agent id stored in ``paths`` (created on first use). A test overrides the transport
    to the backend, the clock, the sleeps, the jitter's random numbers and the GPU probe.
    Raises ``ConfigError`` when the backend URL or the API key is missing.
    """
    backend_url = _backend_url(settings, paths)
    secret = api_key or require_api_key(settings, paths)
    _say_narrowed(paths.ensure(), narrow_workspaces(paths.jobs_dir))
    identity = identity or _identity(paths)
    resources = ResourceMonitor(work_dir=paths.jobs_dir, clock=clock, nvml_loader=nvml_loader)
    gpus = GpuPool.from_setting(
        settings.gpus,
        max_concurrent_jobs=settings.max_concurrent_jobs,
        detect=resources.gpu_indices,
    )
    log.info("gpus: %s; %s", resources.last_gpus.summary(), gpus.describe())
    journals_dir = paths.journals_dir
    outbox = Outbox(paths.outbox_file, max_log_lines=settings.max_log_lines_per_job)
    client = BackendClient(
        base_url=backend_url,
        api_key=secret,
        identity=identity,
        transport=transport,
        timeout_s=settings.request_timeout_seconds,
    )
    state = AgentState(
        agent_id=identity.agent_id, version=identity.version, backend_url=backend_url
    )
    daemon: Daemon
    poller = Poller(
        client=client,
        state=state,
        min_interval_s=settings.min_poll_interval_seconds,
        auth_retry_s=settings.auth_retry_seconds,
        reload_key=lambda: reread_api_key(paths),
        headers=lambda: daemon.poll_headers(),
        on_answer=lambda answer: updater.observe(answer),
        holds=lambda job_id: daemon.holds(job_id),
        sleep=sleep,
        rng=rng,
        clock=clock,
    )
    uploader: Uploader
    artifacts: ArtifactUploader
    pruner = JobPruner(
        outbox=outbox,
        jobs_dir=paths.jobs_dir,
        retention_days=settings.job_retention_days,
        in_use=lambda job_id: daemon.holds(job_id),
    )
    jobs = JobSlots(
        client=client,
        outbox=outbox,
        state=state,
        options=_job_options(settings),
        jobs_dir=paths.jobs_dir,
        journals_dir=journals_dir,
        gpus=gpus,
        datasets=DatasetFetcher(
            client=client, cache=DatasetCache(paths.cache_dir / "datasets"), sleep=sleep
        ),
        features=lambda: poller.features,
        wake_uploader=lambda: uploader.wake(),
        wake_artifacts=lambda: artifacts.wake(),
        sleep=sleep,
    )
    uploader = Uploader(
        outbox=outbox,
        client=client,
        features=poller.known_features,
        on_control=jobs.on_control,
        on_gone=jobs.on_gone,
        on_delivered=lambda job_id: _delivered(jobs, pruner, job_id),
        sleep=sleep,
        rng=rng,
        clock=clock,
    )
    artifacts = ArtifactUploader(
        outbox=outbox,
        client=client,
        features=poller.known_features,
        board=state.uploads,
        on_settled=lambda _job_id: uploader.wake(),
        sleep=sleep,
        rng=rng,
        clock=clock,
        heartbeat_interval_s=settings.heartbeat_interval_seconds,
    )
    daemon = Daemon(
        options=_daemon_options(settings),
        poller=poller,
        uploader=uploader,
        artifacts=artifacts,
        jobs=jobs,
        outbox=outbox,
        state=state,
        resources=resources,
        jobs_dir=paths.jobs_dir,
        journals_dir=journals_dir,
        clock=clock,
        sleep=sleep,
        pruner=pruner,
    )
    updater = build_updater(
        settings, paths, client=client, version=identity.version, platform=identity.platform
    )
    updater.on_ready = daemon.stop_for_update
    updater.on_change = lambda status: poller.refresh()  # the page learns it at once
    daemon.update_info = lambda: updater.status.as_info()
    return Agent(settings, paths, identity, client, outbox, state, daemon, updater)


async def run_agent(settings: Settings, paths: AgentPaths) -> int:
    """Run the daemon in the foreground until it drains; the process exit code."""
    secret = require_api_key(settings, paths)
    narrowed = paths.ensure()
    setup_logging(settings.log_level, log_file=paths.log_file, secrets=(secret.get_secret_value(),))
    _say_narrowed(narrowed, 0)
    agent = build_agent(settings, paths, api_key=secret)
    identity = agent.identity
    log.info(
        "agent %s (training-agent %s on %s/%s) for %s",
        identity.agent_id,
        identity.version,
        identity.platform,
        identity.hostname,
        settings.backend_url,
    )
    try:
        code = await agent.run()
    except TrainingAgentError:
        raise  # a sentence the CLI prints, with its own exit code
    except Exception:
        # Never a silent stop: the log gets the traceback, and a service manager sees a
        # failure and starts the agent again (the outbox and the journals carry over).
        log.critical(
            "the agent stopped on an unexpected error (a bug: please report it with this "
            "traceback); exiting with code %d",
            EXIT_CRASHED,
            exc_info=True,
        )
        return EXIT_CRASHED
    if code == EXIT_UPDATE and agent.updater.wants_restart:
        agent.updater.restart()  # switches builds and re-executes: does not return
    agent.updater.discard()
    return code


def _job_options(settings: Settings) -> JobOptions:
    return JobOptions(
        allow_command_jobs=settings.allow_command_jobs,
        cancel_grace_s=settings.cancel_grace_seconds,
        training_python=settings.training_python,
        heartbeat_interval_s=settings.heartbeat_interval_seconds,
        upload_artifacts=settings.upload_artifacts,
        max_artifact_bytes=int(settings.max_artifact_gb * 1024**3),
        policy=settings.job_policy(),
    )


def _daemon_options(settings: Settings) -> DaemonOptions:
    return DaemonOptions(
        max_jobs=settings.max_jobs,
        max_concurrent_jobs=settings.max_concurrent_jobs,
        idle_exit_s=settings.idle_exit_seconds,
        min_free_disk_gb=settings.min_free_disk_gb,
        labels=settings.labels,
    )


def _backend_url(settings: Settings, paths: AgentPaths) -> str:
    if settings.backend_url is None:
        raise ConfigError(
            "no backend URL: set BACKEND_URL (or backend_url in "
            f"{paths.config_file}) to your platform's address"
        )
    return settings.backend_url


def _identity(paths: AgentPaths) -> AgentIdentity:
    # Under TRAINING_AGENT_HOME nothing outside it is read, not even a FineTune Lab id.
    legacy = None if paths.isolated else LEGACY_AGENT_ID_FILE
    return detect_identity(load_or_create_agent_id(paths.agent_id_file, legacy_path=legacy))


def _delivered(jobs: JobSlots, pruner: JobPruner, job_id: str) -> None:
    """A job's last report went out: its journal goes, and older jobs may be pruned."""
    jobs.on_delivered(job_id)
    pruner.wake()


def _say_narrowed(dirs: list[Path], work_dirs: int) -> None:
    """Log what ``AgentPaths.ensure`` and ``narrow_workspaces`` made owner-only."""
    for path in dirs:
        log.warning("%s was open to other users; it is owner-only (0700) now", path)
    if work_dirs:
        log.warning("%d job work folder(s) were open to other users; owner-only now", work_dirs)
