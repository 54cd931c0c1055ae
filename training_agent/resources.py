"""What this machine offers jobs: CPUs, memory, GPUs, free disk; and who gets which GPU.

``ResourceMonitor`` samples the machine at most every ``max_age_s`` (30 s), so a poll
every second costs nothing, and renders the ``X-Agent-Info`` header (compact JSON, well
under the backend's 4 KiB)::

    {"cpu_count":8,"memory_gb":31.2,"memory_available_gb":20.5,
     "gpus":[{"index":0,"name":"NVIDIA A10","memory_gb":22.5,"memory_free_gb":22.1}],
     "disk_free_gb":120.4,"max_jobs":1,"busy_jobs":0}

GPUs come from ``gpus.GpuProbe`` (NVIDIA's through NVML, Apple silicon's as ``mps``);
where there are none, ``gpus`` is empty and ``gpu_note`` says why (``no NVIDIA
driver``); ``gpu_driver`` is the NVIDIA driver's version when one answers.

``GpuPool`` hands GPUs to jobs from the ``gpus`` setting (``all``, ``none`` or a list
like ``0,1``); see its docstring for when ``CUDA_VISIBLE_DEVICES`` is set.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from training_agent.errors import ConfigError
from training_agent.gpus import GIB, GpuProbe, GpuReading, load_nvml

log = logging.getLogger(__name__)

SAMPLE_MAX_AGE_S = 30.0
MAX_AGENT_INFO_BYTES = 4096  # what the backend stores at most
CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"


def _gb(value: float) -> float:
    return round(value / GIB, 1)


def free_disk_bytes(path: Path) -> int | None:
    """Free bytes on the file system of ``path`` (or its nearest existing parent)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


class ResourceMonitor:
    """Samples the machine's resources, at most every ``max_age_s``."""

    def __init__(
        self,
        *,
        work_dir: Path,
        max_age_s: float = SAMPLE_MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
        nvml_loader: Callable[[], Any] = load_nvml,
        gpu_probe: GpuProbe | None = None,
    ) -> None:
        self._work_dir = work_dir
        self._max_age_s = max_age_s
        self._clock = clock
        self._gpus = gpu_probe or GpuProbe(nvml_loader)
        self._sample: dict[str, Any] | None = None
        self._last_gpus = GpuReading()
        self._sampled_at = 0.0
        self.samples_taken = 0

    def sample(self) -> dict[str, Any]:
        """The machine's resources; a fresh reading at most every ``max_age_s``."""
        now = self._clock()
        if self._sample is None or now - self._sampled_at >= self._max_age_s:
            self._sample = self._read()
            self._sampled_at = now
            self.samples_taken += 1
        return self._sample

    def gpu_indices(self) -> list[str]:
        """The indices of the NVIDIA GPUs NVML sees (empty without a driver)."""
        return self.last_gpus.cuda_indices()

    @property
    def last_gpus(self) -> GpuReading:
        """The GPUs of the latest sample (taken now if it is too old)."""
        self.sample()
        return self._last_gpus

    def info_header(
        self,
        *,
        busy_jobs: int,
        max_jobs: int,
        labels: tuple[str, ...] = (),
        busy_gpus: frozenset[str] = frozenset(),
        update: dict[str, object] | None = None,
    ) -> str:
        """The ``X-Agent-Info`` value: the last sample, the job slots, the ``labels``
        setting, ``"busy": true`` on each GPU a job holds (the backend counts the
        others as free when a job asks for GPUs), and the self-update's state when there
        is one, as compact JSON."""
        sample = self.sample()
        gpus = [
            {**gpu, "busy": True} if str(gpu.get("index")) in busy_gpus else gpu
            for gpu in sample["gpus"]
        ]
        info = {**sample, "gpus": gpus, "max_jobs": max_jobs, "busy_jobs": busy_jobs}
        if labels:
            info["labels"] = list(labels)
        if update:
            info["update"] = update
        return json.dumps(info, separators=(",", ":"))

    def _read(self) -> dict[str, Any]:
        self._last_gpus = gpus = self._gpus.read()
        memory = None
        with contextlib.suppress(OSError, RuntimeError):
            memory = psutil.virtual_memory()
        free = free_disk_bytes(self._work_dir)
        return {
            "cpu_count": os.cpu_count() or 1,
            "memory_gb": None if memory is None else _gb(memory.total),
            "memory_available_gb": None if memory is None else _gb(memory.available),
            "gpus": gpus.gpus,
            **gpu_facts(gpus),
            "disk_free_gb": None if free is None else _gb(free),
        }


def gpu_facts(reading: GpuReading) -> dict[str, str]:
    """``gpu_driver`` and ``gpu_note`` of a reading, only those it has (a small header)."""
    facts = {"gpu_driver": reading.driver, "gpu_note": reading.note}
    return {name: value for name, value in facts.items() if value}


class GpuPool:
    """Which GPUs each job may use, from the ``gpus`` setting.

    - ``none``: every job gets ``CUDA_VISIBLE_DEVICES=""`` (no GPU).
    - a list such as ``0,1``: those GPUs are shared out. Each job gets
      ``len(list) // max_concurrent_jobs`` of them (at least one), free ones only; a
      job is not claimed while its share is not free.
    - ``all``: like a list of every NVIDIA GPU NVML sees, but with one job at a time
      the variable is left as the agent found it (the job sees what the agent sees);
      without a driver (or on Apple silicon's ``mps``) the GPUs are not managed at all.

    ``acquire`` returns the value for ``CUDA_VISIBLE_DEVICES`` (None: leave it alone).
    """

    def __init__(self, devices: list[str] | None, *, max_concurrent_jobs: int) -> None:
        self._devices = devices
        self._busy: dict[str, list[str]] = {}  # job id -> its GPUs
        count = len(devices or [])
        self._share = max(1, count // max(1, max_concurrent_jobs)) if count else 0

    @classmethod
    def from_setting(
        cls, setting: str, *, max_concurrent_jobs: int, detect: Callable[[], list[str]]
    ) -> GpuPool:
        """Parse ``all``, ``none`` or ``0,1``; raises ``ConfigError`` for anything else."""
        value = setting.strip().lower()
        if value == "none":
            return cls([], max_concurrent_jobs=max_concurrent_jobs)
        if value == "all":
            if max_concurrent_jobs <= 1:
                return cls(None, max_concurrent_jobs=max_concurrent_jobs)
            found = detect()
            return cls(found or None, max_concurrent_jobs=max_concurrent_jobs)
        return cls(parse_gpu_list(setting), max_concurrent_jobs=max_concurrent_jobs)

    @property
    def managed(self) -> bool:
        return self._devices is not None

    def describe(self) -> str:
        """What jobs get, for the start-up log line."""
        if self._devices is None:
            return "jobs see the GPUs the agent sees"
        if not self._devices:
            return "jobs get no GPU"
        return f"jobs get {self._share} each of {','.join(self._devices)}"

    def has_free_share(self) -> bool:
        """Whether a new job would get its share now."""
        return not self._devices or len(self._free()) >= self._share

    def acquire(self, job_id: str) -> str | None:
        """Reserve the job's GPUs; the ``CUDA_VISIBLE_DEVICES`` value for it."""
        if self._devices is None:
            return None
        if not self._devices:
            return ""
        share = self._free()[: self._share]
        self._busy[job_id] = share
        return ",".join(share)

    def release(self, job_id: str) -> None:
        self._busy.pop(job_id, None)

    def busy(self) -> frozenset[str]:
        """The GPUs jobs hold now (those the pool manages)."""
        return frozenset(gpu for gpus in self._busy.values() for gpu in gpus)

    def _free(self) -> list[str]:
        taken = {gpu for gpus in self._busy.values() for gpu in gpus}
        return [gpu for gpu in self._devices or [] if gpu not in taken]


def parse_gpu_list(setting: str) -> list[str]:
    """``"0, 1"`` -> ``["0", "1"]``; raises ``ConfigError`` with what to write instead."""
    items = [item.strip() for item in setting.split(",")]
    if not items or not all(item.isdigit() for item in items) or len(set(items)) != len(items):
        raise ConfigError(
            f"invalid setting 'gpus': {setting!r}; use all, none, or GPU indices like 0,1"
        )
    return items
