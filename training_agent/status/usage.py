"""Live machine usage for the dashboard: CPU and GPU load, memory in use, free disk.

``GET /v1/resources`` answers ``UsageSampler.sample()``; unlike the snapshot's
``resources`` (what the machine *offers* jobs, sampled every 30 s for the backend) this
is read on every request, so the dashboard can show load as it changes::

    {"cpu_percent": 37.5, "cpu_count": 8, "memory_gb": 31.2, "memory_used_gb": 10.7,
     "disk_free_gb": 120.4,
     "gpus": [{"index": 0, "name": "NVIDIA A10", "utilization_percent": 98,
               "memory_gb": 22.5, "memory_used_gb": 20.1}]}

Values the machine cannot tell are null; without nvidia-ml-py or a driver ``gpus`` is [].
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from training_agent.resources import GIB, free_disk_bytes, load_nvml, read_gpus


def _gb(value: float) -> float:
    return round(value / GIB, 1)


def read_gpu_usage(nvml: Any) -> list[dict[str, Any]]:
    """Utilization and memory in use of every GPU ``nvml`` sees; [] when it cannot say."""
    gpus = read_gpus(nvml)
    for gpu in gpus:
        gpu["utilization_percent"] = _utilization(nvml, gpu["index"])
        gpu["memory_used_gb"] = round(gpu["memory_gb"] - gpu.pop("memory_free_gb"), 1)
    return gpus


def _utilization(nvml: Any, index: int) -> int | None:
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        return int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except Exception:  # some GPUs (and vGPUs) do not report it
        return None


class UsageSampler:
    """Reads the machine's load on each ``sample()``; nvml is loaded once, lazily."""

    def __init__(self, *, work_dir: Path, nvml_loader: Callable[[], Any] = load_nvml) -> None:
        self._work_dir = work_dir
        self._nvml_loader = nvml_loader
        self._nvml: Any = None
        self._nvml_loaded = False
        # cpu_percent(None) measures since its previous call: this first call starts it.
        with contextlib.suppress(OSError, RuntimeError):
            psutil.cpu_percent(interval=None)

    def sample(self) -> dict[str, Any]:
        if not self._nvml_loaded:
            self._nvml, self._nvml_loaded = self._nvml_loader(), True
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
            "gpus": read_gpu_usage(self._nvml),
        }
