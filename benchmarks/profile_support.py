"""Where a server process's CPU goes: psutil for the totals, py-spy for the functions.

    with sampled(pid, out_dir / "poll.txt") as out:   # py-spy record, collapsed stacks
        ...                                           # the load to look at
    print("\\n".join(top_of_profile(out)))

py-spy is not a dependency of the project: ``.venv/bin/pip install py-spy`` first. It
sees the Python frames of every thread; with uvloop the event loop itself is C, so its
own time shows as the frame that runs it.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

#: Leaf frames of threads that wait rather than work (py-spy may still sample them).
IDLE_LEAVES = ("Condition.wait", "EpollSelector.select", "Queue.get", "select")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads)."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


@contextmanager
def sampled(pid: int, out: Path, rate_hz: int = 250) -> Iterator[Path]:
    """py-spy samples ``pid`` for the duration of the block into ``out``."""
    spy = shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [spy, "record", "--format", "raw", "--rate", str(rate_hz), "--nonblocking"]
    command += ["-o", str(out), "--pid", str(pid)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    time.sleep(1.0)  # py-spy attaches
    try:
        yield out
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


def _frame(frame: str) -> tuple[str, str]:
    """``function (file)`` and its library, of a frame ``function (path/file.py:line)``."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = path.split("/")
    library = parts[0] if len(parts) > 1 else "stdlib"
    if "site-packages" in parts:
        library = parts[parts.index("site-packages") + 1]
    return f"{name} ({path})", library


def top_of_profile(collapsed: Path, count: int = 15) -> list[str]:
    """Where the busy samples of py-spy's collapsed stacks went, as Markdown rows: by
    library (self time), the functions with the most self time, and this project's
    functions by total time (with what they call)."""
    own: dict[str, int] = {}
    libraries: dict[str, int] = {}
    ours: dict[str, int] = {}
    busy = 0
    for line in collapsed.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        frames = [_frame(frame) for frame in stack.split(";")]
        if frames[-1][0].split(" (")[0] in IDLE_LEAVES:
            continue
        n = int(number)
        busy += n
        leaf, library = frames[-1]
        own[leaf] = own.get(leaf, 0) + n
        libraries[library] = libraries.get(library, 0) + n
        for frame in {name for name, library in frames if library == "training_backend"}:
            ours[frame] = ours.get(frame, 0) + n

    def table(counts: dict[str, int]) -> list[str]:
        ranked = sorted(counts.items(), key=lambda item: -item[1])[:count]
        return [f"| {100 * n / max(busy, 1):.1f} % | `{name}` |" for name, n in ranked]

    return [
        f"busy samples: {busy}",
        "self time by library:",
        *table(libraries),
        "self time by function:",
        *table(own),
        "training_backend functions, total time:",
        *table(ours),
    ]
