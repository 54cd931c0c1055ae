"""GPUs out of the box: NVML through a fake ``pynvml`` module put where the real one is
imported; "no NVIDIA driver" said plainly; Apple silicon as ``mps`` with its memory."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from tests.support.fake_nvml import (
    FakeNvml,
    NVMLError,
    NVMLError_DriverNotLoaded,
    NVMLError_LibraryNotFound,
)
from training_agent.gpus import (
    MPS,
    NO_DRIVER,
    GpuProbe,
    NvmlUnavailable,
    load_nvml,
)


def importing(module: Any) -> Any:
    """An ``import_module`` that hands out ``module`` for pynvml."""

    def import_module(name: str) -> Any:
        assert name == "pynvml"
        return module

    return import_module


def missing(name: str) -> Any:
    raise ModuleNotFoundError(f"No module named {name!r}")


def test_the_fake_module_is_loaded_and_initialised_at_the_import_boundary() -> None:
    fake = FakeNvml()
    assert load_nvml(importing(fake)) is fake
    assert fake.inits == 1


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (NVMLError_LibraryNotFound(), NO_DRIVER),
        (NVMLError_DriverNotLoaded(), NO_DRIVER),
        (NVMLError("Unknown Error"), "the NVIDIA driver did not answer (Unknown Error)"),
    ],
)
def test_a_failed_init_says_why_in_a_few_words(error: Exception, reason: str) -> None:
    with pytest.raises(NvmlUnavailable) as raised:
        load_nvml(importing(FakeNvml(init_error=error)))
    assert str(raised.value) == reason


def test_a_broken_install_without_nvidia_ml_py_says_so() -> None:
    with pytest.raises(NvmlUnavailable, match="nvidia-ml-py is missing"):
        load_nvml(missing)


def test_nvidia_gpus_with_driver_and_free_memory() -> None:
    fake = FakeNvml()
    probe = GpuProbe(lambda: load_nvml(importing(fake)), apple_silicon=lambda: False)

    reading = probe.read()
    probe.read()

    assert reading.gpus == [
        {"index": 0, "name": "NVIDIA A10", "memory_gb": 24.0, "memory_free_gb": 20.0},
        {"index": 1, "name": "NVIDIA A10", "memory_gb": 24.0, "memory_free_gb": 19.0},
    ]
    assert (reading.driver, reading.note) == ("550.54.15", None)
    assert reading.cuda_indices() == ["0", "1"]
    assert reading.summary() == (
        "2 GPU(s): NVIDIA A10 (20.0 of 24.0 GB free), NVIDIA A10 (19.0 of 24.0 GB free); "
        "driver 550.54.15"
    )
    assert fake.inits == 1  # loaded once, read on every call


def test_without_a_driver_the_reading_says_no_nvidia_driver() -> None:
    fake = FakeNvml(init_error=NVMLError_LibraryNotFound())
    probe = GpuProbe(lambda: load_nvml(importing(fake)), apple_silicon=lambda: False)

    reading = probe.read()

    assert (reading.gpus, reading.driver, reading.note) == ([], None, NO_DRIVER)
    assert reading.summary() == "no NVIDIA driver"
    assert GpuProbe(lambda: None, apple_silicon=lambda: False).read().note == NO_DRIVER


def test_a_loader_that_blows_up_is_a_note_never_a_crash() -> None:
    def broken() -> Any:
        raise OSError("libnvidia-ml.so.1: cannot open shared object file")

    reading = GpuProbe(broken, apple_silicon=lambda: False).read()

    assert reading.gpus == []
    assert reading.note is not None and reading.note.startswith("NVML failed to load (OSError")


def test_a_driver_that_sees_no_gpu_says_so() -> None:
    probe = GpuProbe(lambda: FakeNvml(count=0), apple_silicon=lambda: False)
    assert probe.read().note == "the NVIDIA driver sees no GPU"


def test_apple_silicon_is_one_mps_gpu_with_the_unified_memory() -> None:
    fake = FakeNvml(init_error=NVMLError_LibraryNotFound())
    probe = GpuProbe(lambda: load_nvml(importing(fake)), apple_silicon=lambda: True)

    reading = probe.read()

    [gpu] = reading.gpus
    assert (gpu["index"], gpu["name"], gpu["kind"]) == (0, MPS, MPS)
    assert 0 < gpu["memory_free_gb"] <= gpu["memory_gb"]
    assert reading.note is None
    assert reading.cuda_indices() == []  # never put in CUDA_VISIBLE_DEVICES
    assert reading.summary().startswith("1 GPU(s): mps (")
    assert reading.summary().endswith("GB free, unified memory)")


def test_the_real_nvidia_ml_py_is_installed_and_answers_either_way() -> None:
    """The dependency itself: with a driver it lists GPUs, without one it says so."""
    assert importlib.util.find_spec("pynvml") is not None
    reading = GpuProbe(apple_silicon=lambda: False).read()
    if reading.gpus:  # a machine with NVIDIA's driver
        assert reading.driver and reading.note is None
    else:
        assert reading.note == NO_DRIVER
