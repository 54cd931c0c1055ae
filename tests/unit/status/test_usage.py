"""``status.usage``: the machine's load for ``GET /v1/resources``."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.support.fake_nvml import FakeNvml
from training_agent.status.usage import UsageSampler, read_gpu_usage


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


def test_no_nvml_means_no_gpus(tmp_path: Path) -> None:
    loads: list[int] = []

    def loader() -> None:
        loads.append(1)

    sampler = UsageSampler(work_dir=tmp_path, nvml_loader=loader)
    assert sampler.sample()["gpus"] == []
    assert sampler.sample()["gpus"] == []
    assert loads == [1]  # looked for once
    assert read_gpu_usage(None) == []
