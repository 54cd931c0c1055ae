"""The backend's dataset of a job, on local disk before the trainer starts.

When the backend advertises ``dataset_download`` and the claim carried a ``dataset``,
``DatasetFetcher.fetch`` returns a local file with exactly that content: from the cache
when an earlier job fetched it (no download), else downloaded with the job token,
checked against the announced SHA-256 and size, and only then renamed into the cache
(``training_agent.dataset_cache``). The runner hands the path to the trainer: a
TrainingConfig's ``dataset_path`` is rewritten to it, and every job gets it as
``$TRAINING_AGENT_DATASET``.

Failures end the job with one sentence (``DatasetUnavailable``): the backend no longer
has the file (404), the bytes do not match the checksum, or the download kept failing
after the ``DATASET_DOWNLOAD`` retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from training_agent.api import BackendClient
from training_agent.api.download import DownloadedFile
from training_agent.dataset_cache import DatasetCache
from training_agent.errors import ApiError, HttpStatusError, JobConfigError, StateError
from training_agent.jobs import ClaimedJob, JobDataset
from training_agent.retry import DATASET_DOWNLOAD, call_with_retry

log = logging.getLogger(__name__)

DATASET_ENV = "TRAINING_AGENT_DATASET"
CACHE_ENV = "TRAINING_AGENT_DATASET_CACHE"


class DatasetUnavailable(JobConfigError):
    """The job's dataset cannot be had; the job fails with this sentence."""


class DatasetFetcher:
    """Fetches jobs' datasets from the backend into a shared ``DatasetCache``."""

    def __init__(
        self,
        *,
        client: BackendClient,
        cache: DatasetCache,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.cache = cache
        self._client = client
        self._sleep = sleep

    async def fetch(self, job: ClaimedJob) -> Path:
        """A local file with ``job.dataset``'s content; raises ``DatasetUnavailable``."""
        ref = job.dataset
        if ref is None:
            raise ValueError(f"job {job.id} has no dataset on the backend")
        try:
            hit = self.cache.find(ref.sha256, ref.filename, size_bytes=ref.size_bytes)
        except OSError as exc:
            message = f"cannot read the dataset cache {self.cache.root}: {exc}"
            raise DatasetUnavailable(message) from exc
        if hit is not None:
            log.info("job %s: dataset %s found in the cache", job.id, ref.sha256[:12])
            return hit
        try:
            downloaded = await call_with_retry(
                lambda: self._download(job, ref),
                policy=DATASET_DOWNLOAD,
                sleep=self._sleep,
                describe=f"download of the dataset of job {job.id}",
            )
        except HttpStatusError as exc:
            raise DatasetUnavailable(_refused(ref, exc)) from exc
        except (ApiError, StateError) as exc:
            raise DatasetUnavailable(
                f"cannot download the dataset {ref.filename} of this job: {exc}"
            ) from exc
        _check(downloaded, ref)
        path = self.cache.adopt(downloaded.path, ref.sha256, ref.filename)
        log.info("job %s: dataset downloaded, %d bytes", job.id, downloaded.size_bytes)
        return path

    async def _download(self, job: ClaimedJob, ref: JobDataset) -> DownloadedFile:
        try:
            partial = self.cache.partial_path()
        except OSError as exc:
            raise StateError(f"cannot write to the dataset cache {self.cache.root}: {exc}") from exc
        return await self._client.download_dataset(job.id, job.job_token, partial)


def _refused(ref: JobDataset, exc: HttpStatusError) -> str:
    if exc.status == 404:
        return (
            f"the backend no longer has the dataset {ref.filename} of this job; "
            "upload the dataset again and resubmit the job"
        )
    return f"the backend refused the download of the dataset {ref.filename}: {exc}"


def _check(downloaded: DownloadedFile, ref: JobDataset) -> None:
    """Raise ``DatasetUnavailable`` (and drop the file) unless it is the announced one."""
    if downloaded.sha256 == ref.sha256 and (
        ref.size_bytes is None or downloaded.size_bytes == ref.size_bytes
    ):
        return
    downloaded.path.unlink(missing_ok=True)
    raise DatasetUnavailable(
        f"the downloaded dataset {ref.filename} ({downloaded.size_bytes} bytes, SHA-256 "
        f"{downloaded.sha256[:12]}…) is not the file the backend announced (SHA-256 "
        f"{ref.sha256[:12]}…); it was discarded: upload the dataset again and resubmit the job"
    )


def with_dataset(config: dict[str, Any], job: ClaimedJob, local: Path | None) -> dict[str, Any]:
    """``config`` for the trainer: a TrainingConfig's ``dataset_path`` is the local file.

    Without a downloaded file, a TrainingConfig that names no ``dataset_path`` takes the
    job's own ``dataset_path`` (FineTune Lab keeps it in a column, not in the config).
    Other configs (command, demo) are returned unchanged: they get the environment.
    """
    if "type" in config or not ("model" in config or "training" in config):
        return config
    if local is not None:
        return {**config, "dataset_path": str(local)}
    if not config.get("dataset_path") and job.dataset_path:
        return {**config, "dataset_path": job.dataset_path}
    return config


def dataset_env(local: Path | None, cache: DatasetCache | None) -> dict[str, str]:
    """What the trainer is told: the local dataset file and the shared cache for URLs."""
    env: dict[str, str] = {}
    if local is not None:
        env[DATASET_ENV] = str(local)
    if cache is not None:
        env[CACHE_ENV] = str(cache.root)
    return env
