"""``training-agent runtime setup``: a managed virtual environment for the built-in trainer.

The agent itself never needs torch. The trainer runs under ``training_python``; this
command creates ``<data dir>/runtime`` with the same pins as the ``train`` extra (plus
bitsandbytes on CUDA machines), makes this agent's package importable there (a ``.pth``
file), and records the venv's Python as ``training_python`` in config.toml.

``--cuda``: ``auto`` (CUDA pins when ``nvidia-smi`` is found), ``cpu``, or ``cu12x``
(e.g. ``cu124``). pip's own settings (``PIP_INDEX_URL``, ``PIP_EXTRA_INDEX_URL``) pass
through, so a machine can point pip at a CPU-only or CUDA-specific torch index.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import venv
from collections.abc import Callable, Sequence
from pathlib import Path

import training_agent
from training_agent.paths import AgentPaths

# The same pins as the `train` extra in pyproject.toml (a test keeps them equal).
PINS = (
    "torch==2.13.0",
    "transformers==5.24.0",
    "peft==0.21.2",
    "datasets==5.2.0",
    "accelerate==1.15.0",
    "trl==1.16.0",
)
CUDA_PINS = ("bitsandbytes==0.50.2",)
SETUP_COMMAND = "training-agent runtime setup"

Run = Callable[[Sequence[str]], int]


def _run(argv: Sequence[str]) -> int:
    return subprocess.run(list(argv), check=False).returncode


def wants_cuda(choice: str, which: Callable[[str], str | None] = shutil.which) -> bool:
    """Whether ``--cuda choice`` means a CUDA runtime on this machine."""
    if choice == "cpu":
        return False
    if choice == "auto":
        return which("nvidia-smi") is not None
    if re.fullmatch(r"cu12\d", choice):
        return True
    raise ValueError(f"--cuda must be auto, cpu or cu12x (like cu124), not {choice!r}")


def python_of(venv_dir: Path) -> Path:
    return venv_dir / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def setup_runtime(paths: AgentPaths, *, cuda: str = "auto", run: Run = _run) -> int:
    """Create or update the managed runtime and record it; 0 on success."""
    try:
        use_cuda = wants_cuda(cuda)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    venv_dir = paths.data_dir / "runtime"
    python = python_of(venv_dir)
    if not python.exists():
        print(f"creating {venv_dir}")
        venv.EnvBuilder(with_pip=True).create(venv_dir)
    packages = [*PINS, *(CUDA_PINS if use_cuda else ())]
    print(f"installing {' '.join(packages)} ({'CUDA' if use_cuda else 'CPU'})")
    code = run([str(python), "-m", "pip", "install", "--disable-pip-version-check", *packages])
    if code != 0:
        print(
            f"pip could not install the training runtime (exit {code}); see its output "
            f"above, fix the cause and run `{SETUP_COMMAND}` again",
            file=sys.stderr,
        )
        return 1
    _link_agent(python)
    record_training_python(paths.config_file, python)
    print(f"training runtime ready: training_python = {python} (in {paths.config_file})")
    return 0


def _link_agent(python: Path) -> None:
    """Make this agent's package importable in the venv, so the trainer module runs there."""
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    package_parent = Path(training_agent.__file__).resolve().parent.parent
    Path(site, "training_agent_link.pth").write_text(f"{package_parent}\n", encoding="utf-8")


def record_training_python(config_file: Path, python: Path) -> None:
    """Set ``training_python`` in config.toml, keeping every other line."""
    line = f"training_python = {_toml_string(str(python))}\n"
    lines = config_file.read_text(encoding="utf-8").splitlines(True) if config_file.exists() else []
    kept = [item for item in lines if not re.match(r"\s*training_python\s*=", item)]
    config_file.parent.mkdir(parents=True, exist_ok=True)
    # first: a top-level key must come before any [table]
    config_file.write_text("".join([line, *kept]), encoding="utf-8")


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
