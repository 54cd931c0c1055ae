"""A fake of the few NVML calls the agent makes, for two GPUs (no GPU here)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any


class FakeNvml:
    """The few pynvml calls the monitor makes, for two GPUs."""

    def nvmlDeviceGetCount(self) -> int:  # pynvml names
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        return SimpleNamespace(total=24 * 1024**3, free=(20 - handle) * 1024**3)

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return b"NVIDIA A10"
