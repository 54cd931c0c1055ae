"""Live machine usage for the dashboard: CPU and GPU load, memory in use, free disk.

``GET /v1/resources`` answers ``UsageSampler.sample()``; unlike the snapshot's
``resources`` (what the machine *offers* jobs, sampled every 30 s for the backend) this
is read on every request, so the dashboard can show load as it changes::

    {"cpu_percent": 37.5, "cpu_count": 8, "memory_gb": 31.2, "memory_used_gb": 10.7,
     "disk_free_gb": 120.4,
     "gpus": [{"index": 0, "name": "NVIDIA A10", "utilization_percent": 98,
               "memory_gb": 22.5, "memory_used_gb": 20.1}], "gpu_driver": "535.104.05"}

Values the machine cannot tell are null. Without GPUs ``gpus`` is [] and ``gpu_note``
says why (``no NVIDIA driver``); Apple silicon's GPU is one ``mps`` entry with the
unified memory and no utilization (``gpus.GpuProbe``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from training_agent.gpus import GIB, MPS, GpuProbe, GpuReading, load_nvml
from training_agent.resources import free_disk_bytes, gpu_facts


def _gb(value: float) -> float:
    return round(value / GIB, 1)


def read_gpu_usage(nvml: Any, reading: GpuReading) -> list[dict[str, Any]]:
    """Utilization and memory in use of every GPU of ``reading``."""
    gpus = [dict(gpu) for gpu in reading.gpus]
    for gpu in gpus:
        nvidia = gpu.get("kind") != MPS
        gpu["utilization_percent"] = _utilization(nvml, gpu["index"]) if nvidia else None
        free = gpu.pop("memory_free_gb")
        total = gpu["memory_gb"]
        gpu["memory_used_gb"] = None if None in (total, free) else round(total - free, 1)
    return gpus


def _utilization(nvml: Any, index: int) -> int | None:
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        return int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except Exception:  # some GPUs (and vGPUs) do not report it
        return None


class UsageSampler:
    """Reads the machine's load on each ``sample()``; nvml is loaded once, lazily."""

    def __init__(
        self,
        *,
        work_dir: Path,
        nvml_loader: Callable[[], Any] = load_nvml,
        gpu_probe: GpuProbe | None = None,
    ) -> None:
        self._work_dir = work_dir
        self._gpus = gpu_probe or GpuProbe(nvml_loader)
        # cpu_percent(None) measures since its previous call: this first call starts it.
        with contextlib.suppress(OSError, RuntimeError):
            psutil.cpu_percent(interval=None)

    def sample(self) -> dict[str, Any]:
        gpus = self._gpus.read()
        cpu = memory = None
        with contextlib.suppress(OSError, RuntimeError):
            cpu = psutil.cpu_percent(interval=None)
            memory = psutil.virtual_memory()
        free = free_disk_bytes(self._work_dir)
        return {
            "cpu_percent": cpu,
            "cpu_count": os.cpu_count() or 1,
            "memory_gb": None if memory is None else _gb(memory.total),
            "memory_used_gb": None if memory is None else _gb(memory.total - memory.available),
            "disk_free_gb": None if free is None else _gb(free),
            "gpus": read_gpu_usage(self._gpus.nvml, gpus),
            **gpu_facts(gpus),
        }
