"""The machine's load: CPU, RAM, free disk, and utilization and memory of each GPU.

CPU  37% of 8    RAM 10.7/31.2 GB
disk 120.4 GB free
GPU0 ██████  98% 20.1/22.5G
driver 535.104.05

Without a GPU the last line says why (``no NVIDIA driver``); Apple silicon's GPU is
``mps`` with the unified memory.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from training_agent.tui.text import bar, gb, printable

GPU_BAR = 6


class MachinePanel(Static):
    """Renders ``GET /v1/resources`` (or the snapshot's slower ``resources``)."""

    DEFAULT_CSS = """
    MachinePanel { width: 34; padding: 0 1; }
    """

    def show(self, usage: dict[str, Any] | None, offered: dict[str, Any] | None) -> None:
        self.update(render_machine(usage, offered or {}))


def render_machine(usage: dict[str, Any] | None, offered: dict[str, Any]) -> Text:
    if usage is None and not offered:
        return Text("machine: not reported yet", "dim")
    usage = usage or {}
    cpu = usage.get("cpu_percent")
    count = usage.get("cpu_count") or offered.get("cpu_count") or "?"
    cpu_text = f"CPU {cpu:3.0f}% of {count}" if isinstance(cpu, int | float) else f"CPU x{count}"
    total = usage.get("memory_gb", offered.get("memory_gb"))
    used = usage.get("memory_used_gb")
    if used is None and isinstance(total, int | float):
        available = offered.get("memory_available_gb")
        used = None if available is None else total - available
    lines = [
        Text(cpu_text),
        Text(f"RAM {gb(used)}/{gb(total)} GB"),
        Text(f"disk {gb(usage.get('disk_free_gb', offered.get('disk_free_gb')))} GB free"),
    ]
    gpus: list[dict[str, Any]] = usage.get("gpus") or offered.get("gpus") or []
    lines += [_gpu(gpu) for gpu in gpus]
    driver = usage.get("gpu_driver") or offered.get("gpu_driver")
    if gpus and driver:
        lines.append(Text(f"driver {driver}", "dim"))
    if not gpus:
        note = usage.get("gpu_note") or offered.get("gpu_note") or "no GPU seen"
        lines.append(Text(str(note), "dim"))
    return Text("\n").join(lines)


def _gpu(gpu: dict[str, Any]) -> Text:
    load = gpu.get("utilization_percent")
    used = gpu.get("memory_used_gb")
    if used is None and gpu.get("memory_free_gb") is not None:
        used = (gpu.get("memory_gb") or 0) - gpu["memory_free_gb"]
    label = "mps " if gpu.get("kind") == "mps" else f"GPU{gpu.get('index')} "
    text = Text(printable(label))
    if isinstance(load, int | float):
        text.append(bar(load / 100, GPU_BAR), "green")
        text.append(f"{load:4.0f}%")
    text.append(f" {gb(used)}/{gb(gpu.get('memory_gb'))}G")
    return text
