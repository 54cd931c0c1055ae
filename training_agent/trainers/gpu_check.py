"""``scripts/gpu-check``: prove the trainer's GPU paths on a CUDA machine, in minutes.

    scripts/gpu-check --wheels DIR      # on a connected machine: a folder of wheels
    scripts/gpu-check --from DIR        # on the GPU machine: install from it, then check
    scripts/gpu-check                   # on a GPU machine whose Python has everything

The check runs the ``gpu``-marked tests and then ``gpu_bench`` (a bf16 LoRA SFT, a bf16
LoRA DPO and, when bitsandbytes imports, a QLoRA SFT on a random-init model of about
0.5 B parameters), and prints tokens/s, peak GPU memory and model FLOPs utilisation as
Markdown rows for docs/benchmarks.md (``--report FILE`` also writes them as JSON).

GPU machines are often cut off from the network. Such a machine needs only a Python
with torch built for CUDA: ``--wheels DIR`` downloads everything else the check uses
(the ``train`` extra's pins but torch, pytest and its plugins, httpx, bitsandbytes) on a
machine that has the network, with the same Python version and platform; ``--from DIR``
then makes a virtual environment on the GPU machine that sees its torch
(``--system-site-packages``), installs the wheels into it without any index, and runs
the check there. This package itself runs from the checkout.

Exit codes: 0 everything passed; 1 a test or a run failed; 3 nothing to check here (no
CUDA GPU, or a Python without torch or without the packages; one sentence on stderr).
Only the standard library is imported until CUDA is known to be there.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

EXIT_FAILED = 1
EXIT_NOTHING_TO_CHECK = 3
ROOT = Path(__file__).resolve().parents[2]
# What the check imports besides torch (the trainer's runtime and the tests').
NEEDED_MODULES = ("transformers", "peft", "datasets", "accelerate", "trl", "pytest", "httpx")
# Test tooling for the gpu-marked tests (pyproject's pytest settings name these plugins).
TEST_PACKAGES = ("pytest>=8.2,<9", "pytest-timeout", "pytest-asyncio", "httpx")
# Never in the wheel folder: the GPU machine's own torch (and what comes with it) is used.
TORCH_FAMILY = ("torch", "triton", "nvidia-", "cuda-")
# bitsandbytes (QLoRA), pinned as `training-agent runtime setup` installs it on CUDA
# machines (a test keeps the two equal).
QLORA_PIN = "bitsandbytes==0.50.2"
TESTS_TIMEOUT_S = 300
BENCH_TIMEOUT_S = 420


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/gpu-check", description=__doc__.split("\n")[0])
    parser.add_argument("--wheels", type=Path, metavar="DIR", help="make a wheel folder")
    parser.add_argument("--from", dest="source", type=Path, metavar="DIR", help="install from")
    parser.add_argument("--report", type=Path, metavar="FILE", help="also write JSON here")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak, for MFU")
    args = parser.parse_args(argv)
    if args.wheels:
        return make_wheels(args.wheels)
    reason = no_cuda_reason()
    if reason:
        print(reason, file=sys.stderr)
        return EXIT_NOTHING_TO_CHECK
    if args.source:
        passed = ["--report", str(args.report.resolve())] if args.report else []
        if args.peak_tflops:
            passed += ["--peak-tflops", str(args.peak_tflops)]
        return run_in_venv(args.source, passed)
    missing = [m for m in NEEDED_MODULES if not _importable(m)]
    if missing:
        print(
            f"this Python ({sys.executable}) cannot import {', '.join(missing)}; make a wheel "
            "folder with `scripts/gpu-check --wheels DIR` on a connected machine and run "
            "`scripts/gpu-check --from DIR` here",
            file=sys.stderr,
        )
        return EXIT_NOTHING_TO_CHECK
    return check(args.report, args.peak_tflops)


def no_cuda_reason(
    which: Callable[[str], str | None] = shutil.which,
    device_nodes: Sequence[Path] = (Path("/dev/nvidiactl"), Path("/dev/nvidia0")),
) -> str | None:
    """Why there is nothing to check here, in one sentence; None when CUDA works."""
    if which("nvidia-smi") is None and not any(node.exists() for node in device_nodes):
        return (
            "this machine has no NVIDIA GPU (no nvidia-smi, no /dev/nvidia*): gpu-check "
            "measures the trainer on a CUDA GPU and has nothing to check here"
        )
    try:
        import torch
    except ImportError:
        return (
            f"this Python ({sys.executable}) cannot import torch: run gpu-check with a Python "
            "that has torch built for CUDA (PYTHON=/path/to/python scripts/gpu-check)"
        )
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        return (
            f"torch {torch.__version__} ({build}) in this Python sees no CUDA GPU: gpu-check "
            "has nothing to check here; use a Python whose torch is built for this GPU's CUDA"
        )
    return None


def make_wheels(folder: Path, run: Callable[[list[str]], int] | None = None) -> int:
    """Download every wheel the check needs but torch into ``folder``; 0 on success."""
    runner = run or _run
    folder.mkdir(parents=True, exist_ok=True)
    wanted = [*train_pins(), *TEST_PACKAGES]
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        pip = [sys.executable, "-m", "pip"]
        resolve = [*pip, "install", "--dry-run", "--ignore-installed", "--quiet"]
        if runner([*resolve, "--report", str(report), *wanted, *_gpu_extras()]) != 0:
            print("pip could not resolve the packages (see above)", file=sys.stderr)
            return EXIT_FAILED
        pins = without_torch(json.loads(report.read_text())["install"])
    fetch = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    fetch += ["--dest", str(folder)]
    if runner([*fetch, *pins]) != 0:
        print("pip could not download the wheels (see above)", file=sys.stderr)
        return EXIT_FAILED
    requirements = [p for p in wanted if not p.startswith(TORCH_FAMILY)]
    (folder / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
    print(f"{len(pins)} wheels in {folder}; on the GPU machine: scripts/gpu-check --from {folder}")
    return 0


def train_pins() -> list[str]:
    """The ``train`` extra's pins, read from pyproject.toml."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pins: list[str] = project["project"]["optional-dependencies"]["train"]
    return list(pins)


def without_torch(installs: list[dict[str, object]]) -> list[str]:
    """``name==version`` of each package in a pip install report, torch's family left out."""
    pins = []
    for item in installs:
        metadata = item["metadata"]
        assert isinstance(metadata, dict)
        name = str(metadata["name"]).lower()
        if not name.startswith(TORCH_FAMILY):
            pins.append(f"{name}=={metadata['version']}")
    return sorted(pins)


def _gpu_extras() -> list[str]:
    return [QLORA_PIN]


def run_in_venv(folder: Path, passed: list[str]) -> int:
    """Install from the wheel ``folder`` into a venv that sees this Python's torch; check there."""
    venv = Path(tempfile.gettempdir()) / "training-agent-gpu-check"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run(
            [sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True
        )
    install = [str(python), "-m", "pip", "install", "--no-index", "--find-links", str(folder)]
    if _run([*install, "-r", str(folder / "requirements.txt"), *_optional(folder)]) != 0:
        print(f"pip could not install from {folder} (see above)", file=sys.stderr)
        return EXIT_FAILED
    return _run([str(python), "-m", "training_agent.trainers.gpu_check", *passed])


def _optional(folder: Path) -> list[str]:
    return [QLORA_PIN] if any(folder.glob("bitsandbytes-*.whl")) else []


def check(report: Path | None, peak_tflops: float | None) -> int:
    """Run the gpu tests and the benchmark; print what they found."""
    started = time.monotonic()
    tests = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "gpu",
        "tests/trainers",
        "-q",
        "-p",
        "no:randomly",
    ]
    tests_ok = _run(tests, timeout_s=TESTS_TIMEOUT_S) == 0
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "bench.json"
        bench = [sys.executable, "-m", "training_agent.trainers.gpu_bench", "--out", str(out)]
        if peak_tflops:
            bench += ["--peak-tflops", str(peak_tflops)]
        bench_ok = _run(bench, timeout_s=BENCH_TIMEOUT_S) == 0 and out.exists()
        results = json.loads(out.read_text()) if out.exists() else {}
    results.update(gpu_tests="passed" if tests_ok else "failed", seconds=time.monotonic() - started)
    if report:
        report.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"gpu tests: {results['gpu_tests']}; whole check {results['seconds']:.0f} s")
    return 0 if tests_ok and bench_ok else EXIT_FAILED


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _run(argv: list[str], timeout_s: float | None = None) -> int:
    try:
        return subprocess.run(argv, cwd=ROOT, check=False, timeout=timeout_s).returncode
    except subprocess.TimeoutExpired:
        print(f"{' '.join(argv[:4])} ran past {timeout_s:.0f} s", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
