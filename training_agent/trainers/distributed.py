"""``training.distributed``: one trainer process per GPU, started by torchrun.

The agent starts the trainer as one process; when the config asks for data-parallel
training, that process becomes a launcher: it runs ``python -m torch.distributed.run
--standalone --nproc-per-node N hf_entry.py --config ...`` and waits for it. Each rank
runs the same trainer (``LOCAL_RANK`` set), the ``Trainer`` wraps the model in DDP (NCCL
on GPUs, gloo on a CPU), and only rank 0 reports events and saves the result.

Stopping: the agent's SIGTERM reaches the launcher and torchrun (one process group);
torchrun passes it on to the ranks (which it starts in sessions of their own), the
ranks agree at the end of a step to stop (``hf_callback``), save a checkpoint and exit;
the launcher keeps waiting meanwhile, so the agent's grace period covers the save. Its
SIGKILL of the tree, and the sweep of every process carrying the job's tracking
variable, end whatever is left.

Config: ``true``, or ``{"strategy": "ddp", "num_gpus": N}`` (FineTune Lab's
``DistributedConfig``): N processes, by default one per GPU assigned to the job
(``CUDA_VISIBLE_DEVICES``). Without CUDA, ``num_gpus`` CPU processes run with gloo, so a
distributed config can be tried on any machine. ``fsdp`` and ``deepspeed`` are refused.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RANK_ENV = "LOCAL_RANK"  # set by torchrun in every rank
STRATEGIES = ("ddp", "none")
FAILURE_FILE = "trainer-failure.txt"  # a rank's one-sentence failure, for the launcher


@dataclass(frozen=True)
class DistributedSettings:
    num_processes: int | None  # None: one per GPU the job can see


def parse(value: Any) -> DistributedSettings | None:
    """``training.distributed`` as settings; None when it asks for one process."""
    if value is None or value is False:
        return None
    if value is True:
        return DistributedSettings(None)
    if not isinstance(value, dict):
        raise ValueError('training.distributed must be true or an object like {"strategy": "ddp"}')
    strategy = str(value.get("strategy", "ddp")).lower()
    if strategy not in STRATEGIES:
        raise ValueError(
            f"training.distributed.strategy {strategy!r} is not supported by the built-in "
            "trainer; use ddp (one process per GPU, each holding the whole model)"
        )
    count = value.get("num_gpus")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError("training.distributed.num_gpus must be an integer of at least 1")
    if strategy == "none" or count == 1:
        return None
    return DistributedSettings(count)


def is_rank() -> bool:
    """Whether this process is one of torchrun's ranks."""
    return RANK_ENV in os.environ


def processes(settings: DistributedSettings, gpus: int) -> int:
    """How many ranks to start when the job can see ``gpus`` GPUs."""
    if settings.num_processes is None:
        return max(gpus, 1)
    if gpus and settings.num_processes > gpus:
        raise ValueError(
            f"training.distributed.num_gpus asks for {settings.num_processes} GPUs and this "
            f"job can use {gpus}; lower num_gpus or give the job more GPUs"
        )
    return settings.num_processes


def launch(ranks: int, config: Path, job_dir: Path) -> int:
    """Run the trainer as ``ranks`` processes under torchrun; its exit code."""
    entry = Path(__file__).with_name("hf_entry.py")
    argv = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={ranks}",
        str(entry),
        "--config",
        str(config),
    ]
    print(f"distributed: starting {ranks} processes with torchrun", flush=True)
    env = {"OMP_NUM_THREADS": "1", **os.environ, "TRAINING_AGENT_JOB_DIR": str(job_dir)}
    # The agent's SIGTERM reaches torchrun too: it stops the ranks, we wait for them. (A
    # handler, not SIG_IGN: an ignored signal would stay ignored in torchrun.)
    previous = signal.signal(signal.SIGTERM, _keep_waiting)
    try:
        process = subprocess.Popen(argv, env=env, cwd=job_dir)
        code = process.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    failure = job_dir / FAILURE_FILE
    if code != 0 and failure.exists():  # the rank's sentence last, after torchrun's report
        print(failure.read_text(encoding="utf-8").strip(), file=sys.stderr)
    return code


def _keep_waiting(signum: int, frame: object) -> None:
    print("distributed: stop asked; the ranks save a checkpoint and end", flush=True)
