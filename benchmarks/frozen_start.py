"""The one-file executable: build time, size, and how long ``--version`` and ``version`` take.

Builds with ``packaging/build`` into a temp dir (or measures ``--executable PATH``),
then runs ``training-agent --version`` and ``training-agent version`` ``--runs`` times
each (default 10) and reports the median and the slowest wall time. A one-file
executable unpacks itself into a temp dir at every start, which is most of its cost;
``python -m training_agent --version`` from the source tree is measured for comparison.

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
    return work / "work" / "dist" / "training-agent", time.perf_counter() - started


def timed(command: list[str], runs: int) -> tuple[float, float]:
    """Median and slowest wall time of ``command``, in seconds."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times), max(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--executable", type=Path, help="measure this build instead")
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as temp:
        if args.executable is None:
            executable, seconds = build(Path(temp))
            print(f"build (packaging/build, PyInstaller one-file): {seconds:.0f} s")
        else:
            executable = args.executable
        size = executable.stat().st_size
        print(f"executable size: {size / 1024**2:.1f} MiB ({size} bytes)")
        cases = {
            "frozen --version": [str(executable), "--version"],
            "frozen version": [str(executable), "version"],
            "source --version": [sys.executable, "-m", "training_agent", "--version"],
        }
        for name, command in cases.items():
            median, slowest = timed(command, args.runs)
            print(f"{name}: median {median:.2f} s, slowest {slowest:.2f} s ({args.runs} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
