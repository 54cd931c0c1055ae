"""Resource sampling (cached), the X-Agent-Info header, and the GPU pool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.fake_nvml import FakeNvml
from training_agent.errors import ConfigError
from training_agent.gpus import GpuProbe, read_nvidia
from training_agent.resources import (
    MAX_AGENT_INFO_BYTES,
    GpuPool,
    ResourceMonitor,
    free_disk_bytes,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_header_is_compact_json_with_every_resource(tmp_path: Path) -> None:
    monitor = ResourceMonitor(work_dir=tmp_path / "not-yet", nvml_loader=FakeNvml)
    header = monitor.info_header(busy_jobs=1, max_jobs=2)
    info = json.loads(header)
    assert " " not in header.replace("NVIDIA A10", "")
    assert len(header.encode()) < MAX_AGENT_INFO_BYTES
    assert info["cpu_count"] >= 1
    assert info["memory_gb"] > 0 and info["memory_available_gb"] > 0
    assert info["disk_free_gb"] > 0  # from the nearest existing parent
    assert info["gpus"] == [
        {"index": 0, "name": "NVIDIA A10", "memory_gb": 24.0, "memory_free_gb": 20.0},
        {"index": 1, "name": "NVIDIA A10", "memory_gb": 24.0, "memory_free_gb": 19.0},
    ]
    assert info["gpu_driver"] == "550.54.15" and "gpu_note" not in info
    assert (info["max_jobs"], info["busy_jobs"]) == (2, 1)


def test_sampling_happens_at_most_every_thirty_seconds(tmp_path: Path) -> None:
    clock = Clock()
    loads: list[int] = []

    def loader() -> None:
        loads.append(1)

    monitor = ResourceMonitor(work_dir=tmp_path, clock=clock, nvml_loader=loader)
    for _ in range(100):
        monitor.info_header(busy_jobs=0, max_jobs=1)
        clock.now += 0.25  # a poll every 250 ms for 25 s
    assert monitor.samples_taken == 1
    clock.now += 5
    monitor.sample()
    assert monitor.samples_taken == 2
    assert loads == [1]  # nvml is loaded once, not per sample


def test_no_nvml_means_no_gpus_and_no_error(tmp_path: Path) -> None:
    assert read_nvidia(None) == []

    class Broken(FakeNvml):
        def nvmlDeviceGetCount(self) -> int:
            raise RuntimeError("driver gone")

    assert read_nvidia(Broken()) == []
    probe = GpuProbe(lambda: None, apple_silicon=lambda: False)
    monitor = ResourceMonitor(work_dir=tmp_path, gpu_probe=probe)
    sample = monitor.sample()
    assert sample["gpus"] == [] and monitor.gpu_indices() == []
    assert sample["gpu_note"] == "no NVIDIA driver" and "gpu_driver" not in sample


def test_apple_silicon_offers_its_mps_gpu_but_the_pool_leaves_it_alone(tmp_path: Path) -> None:
    probe = GpuProbe(lambda: None, apple_silicon=lambda: True)
    monitor = ResourceMonitor(work_dir=tmp_path, gpu_probe=probe)

    [gpu] = json.loads(monitor.info_header(busy_jobs=0, max_jobs=2))["gpus"]

    assert (gpu["name"], gpu["kind"]) == ("mps", "mps") and gpu["memory_gb"] > 0
    assert monitor.gpu_indices() == []  # no CUDA_VISIBLE_DEVICES for mps
    pool = GpuPool.from_setting("all", max_concurrent_jobs=2, detect=monitor.gpu_indices)
    assert not pool.managed and pool.acquire("job") is None


def test_free_disk_of_a_missing_path_is_its_parents() -> None:
    assert free_disk_bytes(Path("/definitely/not/here")) == free_disk_bytes(Path("/"))


def test_a_list_of_gpus_is_shared_out_between_jobs() -> None:
    pool = GpuPool.from_setting("0,1,2,3", max_concurrent_jobs=2, detect=list)
    assert pool.acquire("a") == "0,1"
    assert pool.has_free_share()
    assert pool.acquire("b") == "2,3"
    assert not pool.has_free_share()
    pool.release("a")
    assert pool.acquire("c") == "0,1"


def test_fewer_gpus_than_slots_limits_the_jobs_that_get_one() -> None:
    pool = GpuPool.from_setting("0", max_concurrent_jobs=2, detect=list)
    assert pool.acquire("a") == "0"
    assert not pool.has_free_share()


def test_none_hides_every_gpu_and_all_leaves_one_job_alone() -> None:
    none = GpuPool.from_setting("none", max_concurrent_jobs=3, detect=list)
    assert [none.acquire("a"), none.acquire("b")] == ["", ""]
    assert none.has_free_share()
    single = GpuPool.from_setting("all", max_concurrent_jobs=1, detect=lambda: ["0", "1"])
    assert single.acquire("a") is None and not single.managed
    shared = GpuPool.from_setting("all", max_concurrent_jobs=2, detect=lambda: ["0", "1"])
    assert (shared.acquire("a"), shared.acquire("b")) == ("0", "1")
    unknown = GpuPool.from_setting("all", max_concurrent_jobs=2, detect=list)
    assert unknown.acquire("a") is None and unknown.has_free_share()


@pytest.mark.parametrize("setting", ["gpu0", "0,,1", "1,1", "-1", ""])
def test_a_bad_gpu_setting_says_what_to_write(setting: str) -> None:
    with pytest.raises(ConfigError, match="all, none, or GPU indices"):
        GpuPool.from_setting(setting, max_concurrent_jobs=1, detect=list)


def test_the_header_carries_the_labels_and_which_gpus_jobs_hold(tmp_path: Path) -> None:
    monitor = ResourceMonitor(work_dir=tmp_path, nvml_loader=FakeNvml)
    header = monitor.info_header(
        busy_jobs=1, max_jobs=2, labels=("a100", "fast"), busy_gpus=frozenset({"1"})
    )
    info = json.loads(header)
    assert info["labels"] == ["a100", "fast"]
    assert [gpu.get("busy", False) for gpu in info["gpus"]] == [False, True]
    assert "labels" not in json.loads(monitor.info_header(busy_jobs=0, max_jobs=1))
