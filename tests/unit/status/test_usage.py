"""``status.usage``: the machine's load for ``GET /v1/resources``."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.support.fake_nvml import FakeNvml
from training_agent.gpus import GpuProbe
from training_agent.status.usage import UsageSampler


class BusyNvml(FakeNvml):
    """Two GPUs; the second does not report its utilization (some vGPUs do not)."""

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        if handle == 1:
            raise RuntimeError("not supported")
        return SimpleNamespace(gpu=97, memory=40)


def test_a_sample_has_cpu_memory_disk_and_each_gpu(tmp_path: Path) -> None:
    sample = UsageSampler(work_dir=tmp_path / "jobs", nvml_loader=BusyNvml).sample()
    assert 0.0 <= sample["cpu_percent"] <= 100.0
    assert sample["cpu_count"] >= 1
    assert 0 < sample["memory_used_gb"] <= sample["memory_gb"]
    assert sample["disk_free_gb"] > 0  # from the nearest existing parent
    assert sample["gpus"] == [
        {
            "index": 0,
            "name": "NVIDIA A10",
            "utilization_percent": 97,
            "memory_gb": 24.0,
            "memory_used_gb": 4.0,
        },
        {
            "index": 1,
            "name": "NVIDIA A10",
            "utilization_percent": None,
            "memory_gb": 24.0,
            "memory_used_gb": 5.0,
        },
    ]
    assert sample["gpu_driver"] == "550.54.15"


def test_no_nvml_means_no_gpus(tmp_path: Path) -> None:
    loads: list[int] = []

    def loader() -> None:
        loads.append(1)

    probe = GpuProbe(loader, apple_silicon=lambda: False)
    sampler = UsageSampler(work_dir=tmp_path, gpu_probe=probe)
    assert sampler.sample()["gpus"] == []
    sample = sampler.sample()
    assert sample["gpus"] == [] and sample["gpu_note"] == "no NVIDIA driver"
    assert loads == [1]  # looked for once


def test_apple_silicon_shows_mps_memory_without_a_utilization(tmp_path: Path) -> None:
    probe = GpuProbe(lambda: None, apple_silicon=lambda: True)
    [gpu] = UsageSampler(work_dir=tmp_path, gpu_probe=probe).sample()["gpus"]
    assert (gpu["name"], gpu["utilization_percent"]) == ("mps", None)
    assert 0 < gpu["memory_used_gb"] < gpu["memory_gb"]
