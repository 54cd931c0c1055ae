"""The one-folder executable: build time, size, and how long ``--version`` and ``version`` take.

Builds with ``packaging/build`` into a temp dir (or measures ``--executable PATH``, the
``training-agent`` inside an unpacked archive), then runs ``training-agent --version``
and ``training-agent version`` ``--runs`` times each (default 10), interleaved with
``python -m training_agent --version`` from the source tree, and reports the median and
the slowest wall time of each and the ratio of the medians (the goal: the frozen
``--version`` within 1.5 times the source one).

    .venv/bin/python benchmarks/frozen_start.py [--runs 10] [--executable PATH]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agent_support import machine

ROOT = Path(__file__).resolve().parent.parent


def build(work: Path) -> tuple[Path, float]:
    """Build into ``work``; the executable and the build's wall time."""
    started = time.perf_counter()
    command = [str(ROOT / "packaging" / "build"), "--dist", str(work / "dist")]
    subprocess.run([*command, "--work", str(work / "work")], check=True, capture_output=True)
    built = work / "work" / "dist" / "training-agent" / "training-agent"
    return built, time.perf_counter() - started


def folder_bytes(folder: Path) -> int:
    """The size of every file under ``folder`` (links not followed)."""
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def timed(cases: dict[str, list[str]], runs: int) -> dict[str, list[float]]:
    """Wall times of each command, in seconds; the cases take turns, so a load that
    comes and goes on a shared machine falls on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, command in cases.items():
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times[name].append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--executable", type=Path, help="measure this build instead")
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as temp:
        if args.executable is None:
            executable, seconds = build(Path(temp))
            print(f"build (packaging/build, PyInstaller one-folder): {seconds:.0f} s")
        else:
            executable = args.executable.resolve()
        size = folder_bytes(executable.parent)
        print(f"build folder size: {size / 1024**2:.1f} MiB ({size} bytes)")
        cases = {
            "frozen --version": [str(executable), "--version"],
            "frozen version": [str(executable), "version"],
            "source --version": [sys.executable, "-m", "training_agent", "--version"],
        }
        medians = {}
        for name, times in timed(cases, args.runs).items():
            medians[name] = statistics.median(times)
            print(
                f"{name}: median {medians[name]:.2f} s, slowest {max(times):.2f} s "
                f"({args.runs} runs)"
            )
        ratio = medians["frozen --version"] / medians["source --version"]
        print(f"frozen / source --version (medians): {ratio:.2f}x (goal: at most 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
