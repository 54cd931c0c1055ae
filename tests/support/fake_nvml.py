"""A fake ``pynvml`` module: the few NVML calls the agent makes, for two GPUs (no GPU
here). Pass an instance where the real module would come from (``load_nvml``'s
``import_module``, a probe's ``nvml_loader``)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any


class NVMLError(Exception):
    """pynvml's base error."""


class NVMLError_LibraryNotFound(NVMLError):  # pynvml's name
    """No ``libnvidia-ml``: no NVIDIA driver is installed."""


class NVMLError_DriverNotLoaded(NVMLError):  # pynvml's name
    """The library is there, the kernel driver is not loaded."""


class FakeNvml:
    """The few pynvml calls the agent makes, for ``count`` GPUs (two by default);
    ``nvmlInit`` raises ``init_error`` when given one."""

    NVMLError = NVMLError
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVMLError_DriverNotLoaded = NVMLError_DriverNotLoaded

    def __init__(
        self, *, count: int = 2, init_error: Exception | None = None, driver: str = "550.54.15"
    ) -> None:
        self.count = count
        self.init_error = init_error
        self.driver = driver
        self.inits = 0

    def nvmlInit(self) -> None:  # pynvml names
        self.inits += 1
        if self.init_error is not None:
            raise self.init_error

    def nvmlDeviceGetCount(self) -> int:
        return self.count

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        return SimpleNamespace(total=24 * 1024**3, free=(20 - handle) * 1024**3)

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return b"NVIDIA A10"

    def nvmlSystemGetDriverVersion(self) -> str:
        return self.driver
