"""This machine's GPUs: NVIDIA's through NVML, Apple silicon's as ``mps``.

NVML comes with nvidia-ml-py (``pynvml``, a dependency: small, pure Python) and talks
to the driver's ``libnvidia-ml``; where no driver is installed, loading it fails and
the answer is the plain sentence :data:`NO_DRIVER`. On Apple silicon the GPU shares the
machine's memory: it is reported as one GPU named ``mps`` (PyTorch's name for it) with
the unified memory, so a job asking for one GPU can match it. A reading of NVIDIA GPUs::

    GpuReading(gpus=[{"index": 0, "name": "NVIDIA A10", "memory_gb": 22.5,
                      "memory_free_gb": 22.1}], driver="535.104.05", note=None)

An ``mps`` entry carries ``"kind": "mps"`` too; it is never put in
``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil

log = logging.getLogger(__name__)

GIB = 1024**3
MAX_GPUS_REPORTED = 16  # keeps the X-Agent-Info header small on a 64-GPU box
NO_DRIVER = "no NVIDIA driver"
MPS = "mps"


class NvmlUnavailable(Exception):
    """NVML cannot be used here; the message says why in a few words."""


def _gb(value: float) -> float:
    return round(value / GIB, 1)


def load_nvml(import_module: Callable[[str], Any] = importlib.import_module) -> Any:
    """The ``pynvml`` module, initialised; raises :class:`NvmlUnavailable` saying why not."""
    try:
        nvml = import_module("pynvml")
    except ImportError as exc:
        raise NvmlUnavailable("nvidia-ml-py is missing from this installation") from exc
    try:
        nvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...
        raise NvmlUnavailable(_init_failure(nvml, exc)) from exc
    return nvml


def _init_failure(nvml: Any, exc: Exception) -> str:
    """:data:`NO_DRIVER` when there is none, else what the driver said."""
    for name in ("NVMLError_LibraryNotFound", "NVMLError_DriverNotLoaded"):
        kind = getattr(nvml, name, None)
        if isinstance(kind, type) and isinstance(exc, kind):
            return NO_DRIVER
    return f"the NVIDIA driver did not answer ({str(exc)[:120] or type(exc).__name__})"


@dataclass(frozen=True)
class GpuReading:
    """The GPUs seen now, the NVIDIA driver's version, and why none were seen."""

    gpus: list[dict[str, Any]] = field(default_factory=list)
    driver: str | None = None
    note: str | None = None

    def cuda_indices(self) -> list[str]:
        """The indices ``CUDA_VISIBLE_DEVICES`` may name (NVIDIA GPUs only)."""
        return [str(gpu["index"]) for gpu in self.gpus if gpu.get("kind") != MPS]

    def summary(self) -> str:
        """One line: ``2 GPU(s): NVIDIA A10 (20.0 of 24.0 GB free), …; driver 535.1``."""
        if not self.gpus:
            return self.note or "no GPU seen"
        parts = [
            f"{gpu['name']} ({gpu.get('memory_free_gb')} of {gpu.get('memory_gb')} GB free"
            + (", unified memory)" if gpu.get("kind") == MPS else ")")
            for gpu in self.gpus
        ]
        driver = f"; driver {self.driver}" if self.driver else ""
        return f"{len(self.gpus)} GPU(s): {', '.join(parts)}{driver}"


def read_nvidia(nvml: Any) -> list[dict[str, Any]]:
    """Index, name and memory of every GPU ``nvml`` sees; [] when it cannot say."""
    if nvml is None:
        return []
    gpus: list[dict[str, Any]] = []
    try:
        for index in range(min(int(nvml.nvmlDeviceGetCount()), MAX_GPUS_REPORTED)):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            name = nvml.nvmlDeviceGetName(handle)
            gpus.append(
                {
                    "index": index,
                    "name": (name.decode() if isinstance(name, bytes) else str(name))[:64],
                    "memory_gb": _gb(memory.total),
                    "memory_free_gb": _gb(memory.free),
                }
            )
    except Exception as exc:  # a GPU fell off the bus, the driver was upgraded underneath
        log.debug("reading GPUs failed: %s", exc)
    return gpus


def driver_version(nvml: Any) -> str | None:
    """The NVIDIA driver's version, None when it does not say."""
    try:
        value = nvml.nvmlSystemGetDriverVersion()
    except Exception:  # NVMLError: the driver answered the count but not this
        return None
    return (value.decode() if isinstance(value, bytes) else str(value))[:40]


def is_apple_silicon(system: str = sys.platform, machine: str | None = None) -> bool:
    return system == "darwin" and (machine or platform.machine()).lower() == "arm64"


def read_mps() -> list[dict[str, Any]]:
    """Apple silicon's GPU: one ``mps`` with the machine's (unified) memory."""
    total = free = None
    with contextlib.suppress(OSError, RuntimeError):
        memory = psutil.virtual_memory()
        total, free = _gb(memory.total), _gb(memory.available)
    return [{"index": 0, "name": MPS, "kind": MPS, "memory_gb": total, "memory_free_gb": free}]


class GpuProbe:
    """Reads the GPUs on each :meth:`read`; NVML is loaded once, on the first read.

    ``nvml_loader`` returns the initialised module (or None for "no NVIDIA driver") or
    raises :class:`NvmlUnavailable`; tests pass a fake module's factory.
    """

    def __init__(
        self,
        nvml_loader: Callable[[], Any] = load_nvml,
        *,
        apple_silicon: Callable[[], bool] = is_apple_silicon,
    ) -> None:
        self._nvml_loader = nvml_loader
        self._apple_silicon = apple_silicon
        self._loaded = False
        self.nvml: Any = None
        self.unavailable: str | None = None

    def read(self) -> GpuReading:
        """The GPUs now (NVIDIA's, else Apple silicon's), the driver, or why none."""
        self._load()
        if self.nvml is not None:
            gpus = read_nvidia(self.nvml)
            note = None if gpus else "the NVIDIA driver sees no GPU"
            return GpuReading(gpus, driver_version(self.nvml), note)
        if self._apple_silicon():
            return GpuReading(read_mps())
        return GpuReading(note=self.unavailable or NO_DRIVER)

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        try:
            self.nvml = self._nvml_loader()
        except NvmlUnavailable as exc:
            self.unavailable = str(exc)
        except Exception as exc:  # a broken install: say so, never stop the agent
            self.unavailable = f"NVML failed to load ({type(exc).__name__}: {exc})"[:200]
        if self.nvml is None:
            log.info("gpus: %s", self.unavailable or NO_DRIVER)
